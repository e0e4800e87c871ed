package main

import "runtime"

func archName() string { return runtime.GOARCH }
