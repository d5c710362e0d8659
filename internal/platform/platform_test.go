package platform_test

import (
	"errors"
	"testing"

	"github.com/podsmith/podsmith/internal/platform"
)

func TestErrNotSupportedIsErrUnsupported(t *testing.T) {
	if !errors.Is(platform.ErrNotSupported, errors.ErrUnsupported) {
		t.Fatal("ErrNotSupported does not match errors.ErrUnsupported")
	}
}
