// Command godecode decodes a saved ARM VM listing page with encoding/json into a struct holding
// the fields vmssd's decoder keeps (ARMDecoder.decodeVirtualMachinePage), then derives the same
// values (power and provisioning state from the status codes, primary NIC), and prints timing as
// one JSON line in the shape `vmssbench decode` prints. It is the yardstick of the decode goal.
//
// Usage: godecode -file PAGE.json [-iterations N] [-min-seconds S]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"sort"
	"strings"
	"syscall"
	"time"
)

type status struct {
	Code string `json:"code"`
}

type instanceView struct {
	ComputerName        *string  `json:"computerName"`
	PlatformFaultDomain *int     `json:"platformFaultDomain"`
	Statuses            []status `json:"statuses"`
}

type vmProperties struct {
	ProvisioningState *string `json:"provisioningState"`
	OSProfile         struct {
		ComputerName *string `json:"computerName"`
	} `json:"osProfile"`
	HardwareProfile struct {
		VMSize *string `json:"vmSize"`
	} `json:"hardwareProfile"`
	NetworkProfile struct {
		NetworkInterfaces []struct {
			ID         string `json:"id"`
			Properties struct {
				Primary bool `json:"primary"`
			} `json:"properties"`
		} `json:"networkInterfaces"`
	} `json:"networkProfile"`
	InstanceView *instanceView `json:"instanceView"`
}

type armVM struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	InstanceID *string  `json:"instanceId"`
	Location   *string  `json:"location"`
	Zones      []string `json:"zones"`
	SKU        struct {
		Name *string `json:"name"`
	} `json:"sku"`
	Properties vmProperties `json:"properties"`
}

type page struct {
	Value    []armVM `json:"value"`
	NextLink string  `json:"nextLink"`
}

// VM is the record the cache keeps, as vmssd's VirtualMachine holds it.
type VM struct {
	Name, InstanceID, ComputerName, Location, VMSize, PrimaryNIC string
	Zones                                                        []string
	Provisioning, Power                                          string
	FaultDomain                                                  int
}

func convert(p *page) []VM {
	out := make([]VM, 0, len(p.Value))
	for i := range p.Value {
		a := &p.Value[i]
		vm := VM{Name: a.Name, Zones: a.Zones}
		if a.InstanceID != nil {
			vm.InstanceID = *a.InstanceID
		} else {
			vm.InstanceID = a.ID[strings.LastIndexByte(a.ID, '/')+1:]
		}
		if a.Location != nil {
			vm.Location = *a.Location
		}
		if s := a.Properties.HardwareProfile.VMSize; s != nil {
			vm.VMSize = *s
		} else if a.SKU.Name != nil {
			vm.VMSize = *a.SKU.Name
		}
		if s := a.Properties.OSProfile.ComputerName; s != nil {
			vm.ComputerName = *s
		}
		if s := a.Properties.ProvisioningState; s != nil {
			vm.Provisioning = strings.ToLower(*s)
		}
		if view := a.Properties.InstanceView; view != nil {
			for _, st := range view.Statuses {
				code := strings.ToLower(st.Code)
				if strings.HasPrefix(code, "powerstate/") {
					vm.Power = code[len("powerstate/"):]
				} else if vm.Provisioning == "" && strings.HasPrefix(code, "provisioningstate/") {
					vm.Provisioning = strings.SplitN(code[len("provisioningstate/"):], "/", 2)[0]
				}
			}
			if vm.ComputerName == "" && view.ComputerName != nil {
				vm.ComputerName = *view.ComputerName
			}
			if view.PlatformFaultDomain != nil {
				vm.FaultDomain = *view.PlatformFaultDomain
			}
		}
		for j, nic := range a.Properties.NetworkProfile.NetworkInterfaces {
			if j == 0 || nic.Properties.Primary {
				vm.PrimaryNIC = nic.ID
				if nic.Properties.Primary {
					break
				}
			}
		}
		out = append(out, vm)
	}
	return out
}

// cpuNanoseconds is the CPU time of the whole process, garbage collector included.
func cpuNanoseconds() int64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return usage.Utime.Nano() + usage.Stime.Nano()
}

func main() {
	file := flag.String("file", "", "the saved page (required)")
	iterations := flag.Int("iterations", 200, "decodes timed, at most")
	minSeconds := flag.Float64("min-seconds", 0, "keep decoding at least this long (capped at 10000 decodes)")
	flag.Parse()
	data, err := ioutil.ReadFile(*file)
	if err != nil || *iterations < 1 {
		log.Fatalf("godecode: need -file and -iterations >= 1 (%v)", err)
	}
	var times []float64
	var vms int
	began := time.Now()
	cpuBegan := cpuNanoseconds()
	for i := 0; i < 10000 && (i < *iterations || time.Since(began).Seconds() < *minSeconds); i++ {
		start := time.Now()
		var p page
		if err := json.Unmarshal(data, &p); err != nil {
			log.Fatalf("godecode: %v", err)
		}
		records := convert(&p)
		times = append(times, float64(time.Since(start).Nanoseconds()))
		vms = len(records)
	}
	cpu := float64(cpuNanoseconds()-cpuBegan) / float64(len(times)) / 1e6
	sort.Float64s(times)
	fmt.Printf("{\"decoder\":\"go encoding/json\",\"bytes\":%d,\"vms\":%d,\"iterations\":%d,"+
		"\"best_ms\":%.3f,\"median_ms\":%.3f,\"cpu_ms\":%.3f}\n",
		len(data), vms, len(times), times[0]/1e6, times[len(times)/2]/1e6, cpu)
}
