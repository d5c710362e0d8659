package spec_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// staticELF is a minimal x86-64 executable image without an interpreter:
// enough for PreparePauseRootfs, which only inspects it.
func staticELF(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := func(v any) {
		if err := binary.Write(&buf, binary.LittleEndian, v); err != nil {
			t.Fatal(err)
		}
	}
	buf.Write([]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), 0, 0, 0, 0, 0, 0, 0, 0, 0})
	w(uint16(elf.ET_EXEC))
	w(uint16(elf.EM_X86_64))
	w(uint32(elf.EV_CURRENT))
	w(uint64(0x401000))
	w(uint64(64))
	w(uint64(0))
	w(uint32(0))
	w(uint16(64))
	w(uint16(56))
	w(uint16(1))
	w(uint16(0))
	w(uint16(0))
	w(uint16(0))
	w(uint32(elf.PT_LOAD))
	w(uint32(elf.PF_R | elf.PF_X))
	w(uint64(0))
	w(uint64(0x400000))
	w(uint64(0x400000))
	w(uint64(128))
	w(uint64(128))
	w(uint64(0x1000))
	return buf.Bytes()
}

// makeWritable lets a normal user's t.TempDir cleanup remove a read-only
// rootfs.
func makeWritable(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
}
