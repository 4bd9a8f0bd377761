package ingest

import (
	"encoding/json"
	"unicode/utf8"
)

// deadLetter is the JSON body republished to ingest.dead_letter_topic for a
// rejected message.
type deadLetter struct {
	Topic    string `json:"topic"`
	Reason   Reason `json:"reason"`
	Error    string `json:"error"`
	Received string `json:"received"`          // RFC 3339
	Payload  string `json:"payload,omitempty"` // the payload as text, when it is UTF-8
	Base64   []byte `json:"payload_base64,omitempty"`
}

// deadLetter republishes a rejected message with its reason at QoS 0,
// without waiting: the dead-letter topic is for people, and a slow or
// disconnected broker must not hold up ingest.
func (s *Subscriber) deadLetter(topic string, it *item) {
	dl := deadLetter{
		Topic:    it.msg.Topic(),
		Reason:   ReasonOf(it.err),
		Error:    it.err.Error(),
		Received: it.received.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	}
	if p := it.msg.Payload(); utf8.Valid(p) {
		dl.Payload = string(p)
	} else {
		dl.Base64 = p
	}
	b, err := json.Marshal(dl)
	if err != nil {
		return // cannot happen: strings and bytes only
	}
	s.mu.RLock()
	c := s.client
	s.mu.RUnlock()
	if c == nil || !c.IsConnectionOpen() {
		return
	}
	c.Publish(topic, 0, false, b)
	s.metrics.deadLtr.Inc()
}
