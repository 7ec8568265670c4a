package configs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOutputDefaultsAndBounds(t *testing.T) {
	c := Default()
	if c.Output.CoalesceDelay.Duration != 2*time.Millisecond || c.Output.CoalesceBytes != 16384 {
		t.Errorf("output defaults = %+v, want 2ms and 16384", c.Output)
	}
	if c, err := Parse([]byte("[output]\ncoalesce_delay = \"0s\"\n")); err != nil || c.Output.CoalesceDelay.Duration != 0 {
		t.Errorf("coalesce_delay 0s (write at once) refused: %v", err)
	}
	_, err := Parse([]byte("[output]\ncoalesce_delay = \"1s\"\ncoalesce_bytes = 0\n"))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad output section accepted: %v", err)
	}
	for _, want := range []string{"output.coalesce_delay", "output.coalesce_bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}
