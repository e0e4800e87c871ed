package fatimg_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ramboot/ramboot/builder/fatimg"
)

func ExampleBuild() {
	files := []fatimg.File{
		{Name: "config.txt", Data: []byte("arm_64bit=1\n")},
		{Name: "bcm2711-rpi-4-b.dtb", Data: make([]byte, 56000)},
		{Name: "overlays/README", Data: []byte("overlays\n")},
	}
	img, err := fatimg.Build(files, fatimg.Options{
		Label:   "BOOT",
		ModTime: time.Unix(1700000000, 0), // SOURCE_DATE_EPOCH
		MaxSize: 128 << 20,                // the Pi bootloader's ramdisk limit
	})
	if errors.Is(err, fatimg.ErrTooLarge) {
		fmt.Println(err) // names the size needed, the limit and the largest files
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d bytes, type %q, serial %08X\n", len(img), img[54:62], binary.LittleEndian.Uint32(img[39:]))
	// Output: 2117632 bytes, type "FAT16   ", serial 2FBF27C2
}
