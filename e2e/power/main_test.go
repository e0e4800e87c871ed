// Package power tests `ramboot node power` against real peers in the lab:
// OpenIPMI's BMC simulator (ipmi_sim), whose power commands start and stop
// a QEMU guest that netboots from `ramboot serve`, and net-snmp's snmpd
// playing a PoE switch (POWER-ETHERNET-MIB through a pass_persist agent).
package power

import (
	"testing"

	"github.com/ramboot/ramboot/e2e/cache"
)

func TestMain(m *testing.M) { cache.Main(m) }
