package eeprom_test

import (
	"fmt"
	"time"

	"github.com/ramboot/ramboot/eeprom"
)

func ExampleMergeConfig() {
	old := "[all]\nBOOT_UART=0\nBOOT_ORDER=0xf41\n\n[none]\nFREEZE_VERSION=0\n"
	fmt.Print(eeprom.MergeConfig(old, []eeprom.Setting{
		{Key: "BOOT_ORDER", Value: "0xf21"},
		{Key: "TFTP_PREFIX", Value: "2"},
	}))
	// Output:
	// [all]
	// BOOT_UART=0
	// BOOT_ORDER=0xf21
	// TFTP_PREFIX=2
	//
	// [none]
	// FREEZE_VERSION=0
}

func ExampleDigest() {
	fmt.Printf("%s", eeprom.Digest([]byte("abc"), time.Unix(1700000000, 0)))
	// Output:
	// ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
	// ts: 1700000000
}

func ExampleDescribeBootOrder() {
	fmt.Println(eeprom.DescribeBootOrder("0xf21"))
	// Output: SD card, then network, then restart
}
