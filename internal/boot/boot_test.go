package boot_test

import (
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/podsmith/podsmith/internal/boot"
)

func TestBoot(t *testing.T) {
	if runtime.GOOS != "linux" {
		assert.Empty(t, boot.ID())
		return
	}
	assert.Regexp(t, regexp.MustCompile(`^[0-9a-f-]{36}$`), boot.ID())
	assert.Equal(t, boot.ID(), boot.ID())
	assert.True(t, boot.Time().Before(time.Now()))
	assert.True(t, boot.Time().After(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)))
}
