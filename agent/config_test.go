package agent

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"dock/health"
)

// Every field of the dock's config file, thresholds included, has its row in CONFIG.md.
func TestConfigReferenceIsComplete(t *testing.T) {
	doc, err := os.ReadFile("CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []reflect.Type{reflect.TypeOf(Config{}), reflect.TypeOf(health.Thresholds{})} {
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !strings.Contains(string(doc), "| `"+name+"` |") {
				t.Errorf("%s field %s (json %q) has no row in agent/CONFIG.md", typ.Name(), typ.Field(i).Name, name)
			}
		}
	}
}
