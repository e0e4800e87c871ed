package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Sampler polls /proc/PID/status and /proc/PID/fd every 50 ms: the
// peak VmHWM, RSS, threads and open files of one process (Sample starts
// it, Stop ends it).
type Sampler struct {
	pid        int
	stop, done chan struct{}

	HWM, PeakRSS         int64 // kB, peaks
	PeakThreads, PeakFDs int
	Samples              int
	StartHWM             int64 // VmHWM when Sample started
}

func Sample(pid int) *Sampler {
	s := &Sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	s.StartHWM = StatusKB(pid, "VmHWM")
	go func() {
		defer close(s.done)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-tk.C:
			}
		}
	}()
	return s
}

func (s *Sampler) sample() {
	if v := StatusKB(s.pid, "VmHWM"); v > s.HWM {
		s.HWM = v
	}
	s.PeakRSS = max(s.PeakRSS, StatusKB(s.pid, "VmRSS"))
	s.PeakThreads = max(s.PeakThreads, int(StatusKB(s.pid, "Threads")))
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.pid)); err == nil {
		s.PeakFDs = max(s.PeakFDs, len(ents))
	}
	s.Samples++
}

// Stop ends the sampling (once the load is over) and takes a last sample.
func (s *Sampler) Stop() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	<-s.done
	s.sample()
}

// MB is the peak VmHWM in MB.
func (s *Sampler) MB() float64 { return float64(s.HWM) / 1024 }

// StatusKB reads a numeric field of /proc/PID/status ("VmHWM" in kB,
// "Threads"); -1 if absent.
func StatusKB(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// GroupSampler samples, every interval, the summed RSS and PSS of all
// processes of one process group (tftpd-hpa forks a child per transfer:
// its parent's VmHWM alone says little).
type GroupSampler struct {
	pgid               int
	stop, done         chan struct{}
	PeakRSS, PeakPSS   int64 // kB
	PeakProcs, Samples int
	cpu                map[int]float64 // pid -> CPU s last seen
}

func SampleGroup(pgid int, interval time.Duration) *GroupSampler {
	s := &GroupSampler{pgid: pgid, stop: make(chan struct{}), done: make(chan struct{}), cpu: map[int]float64{}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *GroupSampler) Stop() {
	close(s.stop)
	<-s.done
	s.sample()
}

// CPU is the CPU time of the group's processes while sampled: each one's
// last reading summed (a process that lived less than one interval is
// missed; one's last interval before it exited is).
func (s *GroupSampler) CPU() float64 {
	var t float64
	for _, c := range s.cpu {
		t += c
	}
	return t
}

func (s *GroupSampler) sample() {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	var rss, pss int64
	procs := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 {
			continue
		}
		if pg, _ := strconv.Atoi(f[2]); pg != s.pgid {
			continue
		}
		procs++
		if c := TaskCPU(pid); c >= 0 {
			s.cpu[pid] = c
		}
		roll, err := os.ReadFile(filepath.Join("/proc", e.Name(), "smaps_rollup"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(roll), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			n, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "Rss:":
				rss += n
			case "Pss:":
				pss += n
			}
		}
	}
	s.Samples++
	s.PeakRSS = max(s.PeakRSS, rss)
	s.PeakPSS = max(s.PeakPSS, pss)
	s.PeakProcs = max(s.PeakProcs, procs)
}

// TaskCPU is the CPU time of all threads of pid so far, in seconds, from
// /proc/PID/task/*/schedstat (nanoseconds; threads that already exited are
// not counted: Go's rarely exit, dnsmasq and in.tftpd have one).
func TaskCPU(pid int) float64 {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return -1
	}
	var ns int64
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(data)); len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			ns += n
		}
	}
	return float64(ns) / 1e9
}
