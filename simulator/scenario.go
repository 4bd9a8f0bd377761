package simulator

import (
	"fmt"
	"slices"
	"strings"
)

// A Class is the shape of a fault scenario.
type Class uint8

// Scenario classes (issue 7): each has its own shape in the data.
const (
	ClassGradual      Class = iota + 1 // degrades over days: filter clogging, refrigerant leak, wear, scale
	ClassSudden                        // fails at once: a pump or contactor stops
	ClassIntermittent                  // comes and goes, more often as it worsens
	ClassSensor                        // the device is fine, a sensor lies: stuck, spikes, drift
	ClassConnectivity                  // the device goes offline (Last Will) and comes back later
	ClassFaultCode                     // the device reports fault codes on its events topic
	ClassFirmware                      // a firmware rollout breaks many devices at once
)

var classNames = [...]string{ClassGradual: "gradual", ClassSudden: "sudden", ClassIntermittent: "intermittent",
	ClassSensor: "sensor", ClassConnectivity: "connectivity", ClassFaultCode: "fault_code", ClassFirmware: "firmware_rollout"}

func (c Class) String() string {
	if int(c) < len(classNames) && classNames[c] != "" {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// scenarioID indexes scenarios.
type scenarioID uint8

const (
	scNone scenarioID = iota
	scOverheating
	scFilterClogging
	scRefrigerantLeak
	scCompressorFailure
	scCompressorTrips
	scSupplySensorStuck
	scScaleBuildup
	scThermostatFailure
	scElementIntermittent
	scTankSensorSpikes
	scConnectorWear
	scContactorFailure
	scFirmwareRollout
	scBatteryWear
	scBearingWear
	scDryRun
	scPressureIntermittent
	scPressureSensorDrift
	scConnectivityLoss
	numScenarios
)

// anyKind marks a scenario every product kind can have.
const anyKind Kind = 255

// A Scenario is one kind of injected fault.
type Scenario struct {
	Name  string // e.g. "filter_clogging"; the ground truth's scenario
	Kind  Kind   // the product kind it applies to, or every kind
	Class Class
	// Fault is the ticket fault the shipped profiles (examples/forewarn.yaml)
	// raise for it.
	Fault string
	// Needs names the detectors besides threshold that the shipped profiles
	// use to see it, or to see it earlier; "" when threshold rules alone
	// see it.
	Needs string
	// Notice says when the customer notices, in words.
	Notice string
}

var scenarios = [numScenarios]Scenario{
	scOverheating: {Name: "overheating", Kind: HeatPump, Class: ClassSudden, Fault: "overheating",
		Notice: "circulation stops: rooms below setpoint - 1.5 °C for an hour"},
	scFilterClogging: {Name: "filter_clogging", Kind: HeatPump, Class: ClassGradual, Fault: "filter_clogging", Needs: "forecast",
		Notice: "airflow too low to meet the load: rooms cold for an hour"},
	scRefrigerantLeak: {Name: "refrigerant_leak", Kind: HeatPump, Class: ClassGradual, Fault: "refrigerant_leak", Needs: "forecast",
		Notice: "capacity lost: rooms cold for an hour"},
	scCompressorFailure: {Name: "compressor_failure", Kind: HeatPump, Class: ClassSudden, Fault: "compressor_failure",
		Notice: "no heat: rooms cold for an hour"},
	scCompressorTrips: {Name: "compressor_trips", Kind: HeatPump, Class: ClassFaultCode, Fault: "compressor_failure", Needs: "event",
		Notice: "trips (code E42) grow longer until the rooms are cold for an hour"},
	scSupplySensorStuck: {Name: "supply_sensor_stuck", Kind: HeatPump, Class: ClassSensor, Fault: "sensor_stuck", Needs: "flatline",
		Notice: "the controller trusts a stuck reading: rooms cold for an hour on a colder day"},
	scScaleBuildup: {Name: "scale_buildup", Kind: WaterHeater, Class: ClassGradual, Fault: "scale_buildup",
		Notice: "heat-up too slow: a draw finds the tank below 40 °C"},
	scThermostatFailure: {Name: "thermostat_failure", Kind: WaterHeater, Class: ClassSudden, Fault: "tank_overheat",
		Notice: "tank at 85 °C: scalding water, the relief valve drips"},
	scElementIntermittent: {Name: "element_intermittent", Kind: WaterHeater, Class: ClassIntermittent, Fault: "no_hot_water", Needs: "event",
		Notice: "a draw finds the tank below 40 °C (code E-ELEMENT-OPEN reported at each drop-out)"},
	scTankSensorSpikes: {Name: "tank_sensor_spikes", Kind: WaterHeater, Class: ClassSensor, Fault: "sensor_fault", Needs: "rate",
		Notice: "never: the customer feels nothing, but the sensor needs replacing"},
	scConnectorWear: {Name: "connector_wear", Kind: EVCharger, Class: ClassGradual, Fault: "connector_overheat",
		Notice: "the charger derates: charging slower than half power for an hour"},
	scContactorFailure: {Name: "contactor_failure", Kind: EVCharger, Class: ClassSudden, Fault: "charger_fault",
		Notice: "plugged in, not charging, for an hour"},
	scFirmwareRollout: {Name: "firmware_rollout", Kind: EVCharger, Class: ClassFirmware, Fault: "charger_fault", Needs: "event",
		Notice: "sessions abort (code E-OCPP-ABORT): plugged in, not charging, for an hour"},
	scBatteryWear: {Name: "battery_wear", Kind: WaterPump, Class: ClassGradual, Fault: "battery_low", Needs: "usage",
		Notice: "backup battery below 11.2 V: the controller beeps"},
	scBearingWear: {Name: "bearing_wear", Kind: WaterPump, Class: ClassGradual, Fault: "bearing_wear", Needs: "forecast",
		Notice: "vibration above 9 mm/s: the pump is loud"},
	scDryRun: {Name: "dry_run", Kind: WaterPump, Class: ClassSudden, Fault: "low_pressure",
		Notice: "taps run dry: pressure below 1.5 bar with demand for 10 minutes"},
	scPressureIntermittent: {Name: "pressure_intermittent", Kind: WaterPump, Class: ClassIntermittent, Fault: "low_pressure",
		Notice: "a pressure drop of 10 minutes with demand"},
	scPressureSensorDrift: {Name: "pressure_sensor_drift", Kind: WaterPump, Class: ClassSensor, Fault: "low_pressure",
		Notice: "the controller over-pressurises: true pressure above 5.8 bar, the relief valve opens"},
	scConnectivityLoss: {Name: "connectivity_loss", Kind: anyKind, Class: ClassConnectivity, Fault: "device_offline", Needs: "offline",
		Notice: "the owner sees the device offline in the app at 19:00 (if still offline)"},
}

// Scenarios returns every fault scenario the simulator can inject.
func Scenarios() []Scenario {
	out := make([]Scenario, 0, numScenarios-1)
	for _, s := range scenarios[1:] {
		out = append(out, s)
	}
	return out
}

// ScenarioNames returns the names of every scenario.
func ScenarioNames() []string {
	var names []string
	for _, s := range scenarios[1:] {
		names = append(names, s.Name)
	}
	return names
}

func scenarioByName(name string) (scenarioID, bool) {
	for id := scNone + 1; id < numScenarios; id++ {
		if scenarios[id].Name == name {
			return id, true
		}
	}
	return scNone, false
}

// applies reports whether scenario id can happen to a device of kind k.
func (id scenarioID) applies(k Kind) bool {
	return scenarios[id].Kind == anyKind || scenarios[id].Kind == k
}

// parseScenarios resolves names ("all" = every scenario).
func parseScenarios(names []string) ([numScenarios]bool, error) {
	var on [numScenarios]bool
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "all" {
			for id := scNone + 1; id < numScenarios; id++ {
				on[id] = true
			}
			continue
		}
		id, ok := scenarioByName(n)
		if !ok {
			return on, fmt.Errorf("unknown scenario %q (known: all, %s)", n, strings.Join(ScenarioNames(), ", "))
		}
		on[id] = true
	}
	if !slices.Contains(on[:], true) {
		return on, fmt.Errorf("no scenario selected")
	}
	return on, nil
}
