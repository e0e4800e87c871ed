package initd

import "runtime"

func archName() string { return runtime.GOARCH }
