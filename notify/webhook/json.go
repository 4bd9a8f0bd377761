package webhook

import (
	"encoding/json"
	"strings"
)

func jsonText(text string) ([]byte, error) {
	return json.Marshal(struct {
		Text string `json:"text"`
	}{Text: strings.TrimSpace(text)})
}
