// Command goserver serves cloudprovider.instances.v1.Instances from an in-memory map over a
// Unix socket, written the way a team would write this sidecar in Go with grpc-go. It is the
// yardstick vmssd is measured against, and the peer the interop client is checked against.
//
// Provider IDs containing "/slow-" answer only after -slow-delay (or when the caller's deadline
// passes), so a harness can provoke DEADLINE_EXCEEDED.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "vmssd/clients/go/instancesv1"
)

// VM is one inventory entry; the JSON form is what -inventory reads and -write-inventory writes.
type VM struct {
	ProviderID    string        `json:"provider_id"`
	NodeName      string        `json:"node_name"`
	Exists        bool          `json:"exists"`
	Shutdown      bool          `json:"shutdown"`
	InstanceType  string        `json:"instance_type"`
	Zone          string        `json:"zone"`
	Region        string        `json:"region"`
	NodeAddresses []NodeAddress `json:"node_addresses"`
}

// NodeAddress is one address of a VM as Kubernetes types it.
type NodeAddress struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// Inventory is the file format of -inventory.
type Inventory struct {
	VMs []VM `json:"vms"`
}

type server struct {
	pb.UnimplementedInstancesServer
	pb.UnimplementedAdminServer
	byProviderID map[string]*VM
	byNodeName   map[string]*VM
	slowDelay    time.Duration
	hits         uint64
	misses       uint64
}

func newServer(inv Inventory, slowDelay time.Duration) *server {
	s := &server{
		byProviderID: make(map[string]*VM, len(inv.VMs)),
		byNodeName:   make(map[string]*VM, len(inv.VMs)),
		slowDelay:    slowDelay,
	}
	for i := range inv.VMs {
		vm := &inv.VMs[i]
		// Azure resource IDs are case-insensitive; keys are lower-cased.
		s.byProviderID[strings.ToLower(vm.ProviderID)] = vm
		if vm.NodeName != "" {
			s.byNodeName[strings.ToLower(vm.NodeName)] = vm
		}
	}
	return s
}

// lookup finds a VM; managed is false for IDs that are not Azure's, which exist by convention.
func (s *server) lookup(ctx context.Context, providerID, nodeName string) (vm *VM, managed bool, err error) {
	if strings.Contains(providerID, "/slow-") {
		select {
		case <-time.After(s.slowDelay):
		case <-ctx.Done():
			return nil, true, status.FromContextError(ctx.Err()).Err()
		}
	}
	if providerID == "" {
		if nodeName == "" {
			return nil, true, status.Error(codes.InvalidArgument, "neither provider ID nor node name given")
		}
		vm = s.byNodeName[strings.ToLower(nodeName)]
	} else {
		if !strings.HasPrefix(strings.ToLower(providerID), "azure://") {
			return nil, false, nil
		}
		vm = s.byProviderID[strings.ToLower(providerID)]
	}
	if vm != nil {
		atomic.AddUint64(&s.hits, 1)
	} else {
		atomic.AddUint64(&s.misses, 1)
	}
	return vm, true, nil
}

func (s *server) exists(ctx context.Context, providerID, nodeName string) (*pb.ExistsResponse, error) {
	if providerID == "" && nodeName == "" {
		return nil, status.Error(codes.InvalidArgument, "empty provider ID: node not initialised")
	}
	vm, managed, err := s.lookup(ctx, providerID, nodeName)
	if err != nil {
		return nil, err
	}
	return &pb.ExistsResponse{Exists: !managed || (vm != nil && vm.Exists)}, nil
}

func (s *server) shutdown(ctx context.Context, providerID, nodeName string) (*pb.ShutdownResponse, error) {
	if providerID == "" && nodeName == "" {
		return &pb.ShutdownResponse{}, nil
	}
	vm, _, err := s.lookup(ctx, providerID, nodeName)
	if err != nil {
		return nil, err
	}
	return &pb.ShutdownResponse{Shutdown: vm != nil && vm.Exists && vm.Shutdown}, nil
}

func (s *server) InstanceExistsByProviderID(ctx context.Context, r *pb.ProviderIDRequest) (*pb.ExistsResponse, error) {
	return s.exists(ctx, r.ProviderId, "")
}

func (s *server) InstanceShutdownByProviderID(ctx context.Context, r *pb.ProviderIDRequest) (*pb.ShutdownResponse, error) {
	return s.shutdown(ctx, r.ProviderId, "")
}

func (s *server) InstanceExists(ctx context.Context, r *pb.NodeRequest) (*pb.ExistsResponse, error) {
	return s.exists(ctx, r.ProviderId, r.NodeName)
}

func (s *server) InstanceShutdown(ctx context.Context, r *pb.NodeRequest) (*pb.ShutdownResponse, error) {
	return s.shutdown(ctx, r.ProviderId, r.NodeName)
}

func (s *server) InstanceMetadata(ctx context.Context, r *pb.NodeRequest) (*pb.InstanceMetadataResponse, error) {
	vm, managed, err := s.lookup(ctx, r.ProviderId, r.NodeName)
	if err != nil {
		return nil, err
	}
	if !managed {
		return nil, status.Error(codes.InvalidArgument, "provider ID is not an Azure one")
	}
	if vm == nil || !vm.Exists {
		return nil, status.Error(codes.NotFound, "instance not found")
	}
	resp := &pb.InstanceMetadataResponse{
		ProviderId:   vm.ProviderID,
		InstanceType: vm.InstanceType,
		Zone:         vm.Zone,
		Region:       vm.Region,
	}
	for _, a := range vm.NodeAddresses {
		resp.NodeAddresses = append(resp.NodeAddresses, &pb.NodeAddress{Type: a.Type, Address: a.Address})
	}
	return resp, nil
}

func (s *server) InstancesExist(ctx context.Context, r *pb.InstancesExistRequest) (*pb.InstancesExistResponse, error) {
	resp := &pb.InstancesExistResponse{Verdicts: make([]*pb.InstanceVerdict, 0, len(r.ProviderIds))}
	for _, id := range r.ProviderIds {
		v := &pb.InstanceVerdict{ProviderId: id}
		if answer, err := s.exists(ctx, id, ""); err != nil {
			st := status.Convert(err)
			v.Code, v.Message = int32(st.Code()), st.Message()
		} else {
			v.Exists = answer.Exists
		}
		resp.Verdicts = append(resp.Verdicts, v)
	}
	return resp, nil
}

func (s *server) Stats(context.Context, *pb.StatsRequest) (*pb.StatsResponse, error) {
	return &pb.StatsResponse{
		Hits:    atomic.LoadUint64(&s.hits),
		Misses:  atomic.LoadUint64(&s.misses),
		Entries: uint64(len(s.byProviderID)),
	}, nil
}

func (s *server) Invalidate(context.Context, *pb.InvalidateRequest) (*pb.InvalidateResponse, error) {
	return &pb.InvalidateResponse{}, nil // nothing is cached: the map is the truth
}

// generate makes n VMs in scale sets of 100; every tenth is stopped, every 50th is gone.
func generate(n int) Inventory {
	inv := Inventory{VMs: make([]VM, 0, n)}
	for i := 0; i < n; i++ {
		pool, instance := i/100, i%100
		vmss := fmt.Sprintf("bench-pool-%03d", pool)
		inv.VMs = append(inv.VMs, VM{
			ProviderID: fmt.Sprintf("azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/bench-rg/"+
				"providers/Microsoft.Compute/virtualMachineScaleSets/%s/virtualMachines/%d", vmss, instance),
			NodeName:     fmt.Sprintf("%s%06d", vmss, instance),
			Exists:       i%50 != 49,
			Shutdown:     i%10 == 9,
			InstanceType: "Standard_D4s_v5",
			Zone:         fmt.Sprintf("westeurope-%d", instance%3+1),
			Region:       "westeurope",
			NodeAddresses: []NodeAddress{
				{Type: "InternalIP", Address: fmt.Sprintf("10.%d.%d.%d", 1+pool/256, pool%256, 4+instance)},
				{Type: "Hostname", Address: fmt.Sprintf("%s%06d", vmss, instance)},
			},
		})
	}
	return inv
}

func main() {
	socket := flag.String("socket", "", "Unix socket path to serve on (required)")
	inventoryFile := flag.String("inventory", "", "JSON inventory {\"vms\":[...]} to serve")
	vms := flag.Int("vms", 0, "generate this many VMs instead of reading -inventory")
	writeInventory := flag.String("write-inventory", "", "write the served inventory to this file")
	slowDelay := flag.Duration("slow-delay", 10*time.Second, "delay for provider IDs containing /slow-")
	flag.Parse()
	if *socket == "" {
		log.Fatal("goserver: -socket is required")
	}

	inv := generate(*vms)
	if *inventoryFile != "" {
		data, err := os.ReadFile(*inventoryFile)
		if err != nil {
			log.Fatalf("goserver: %v", err)
		}
		inv = Inventory{}
		if err := json.Unmarshal(data, &inv); err != nil {
			log.Fatalf("goserver: %s: %v", *inventoryFile, err)
		}
	}
	if *writeInventory != "" {
		data, _ := json.MarshalIndent(inv, "", "  ")
		if err := os.WriteFile(*writeInventory, append(data, '\n'), 0o644); err != nil {
			log.Fatalf("goserver: %v", err)
		}
	}

	// A stale socket file from a crashed run would make Listen fail; the KMS/CSI convention is
	// to remove it on start and on exit.
	_ = os.Remove(*socket)
	listener, err := net.Listen("unix", *socket)
	if err != nil {
		log.Fatalf("goserver: %v", err)
	}
	grpcServer := grpc.NewServer()
	impl := newServer(inv, *slowDelay)
	pb.RegisterInstancesServer(grpcServer, impl)
	pb.RegisterAdminServer(grpcServer, impl)
	healthServer := health.NewServer()
	healthServer.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthServer.SetServingStatus("cloudprovider.instances.v1.Instances", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(grpcServer, healthServer)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		healthServer.Shutdown()
		grpcServer.GracefulStop()
	}()
	fmt.Printf("goserver: serving %d VMs on %s\n", len(inv.VMs), *socket)
	if err := grpcServer.Serve(listener); err != nil {
		log.Fatalf("goserver: %v", err)
	}
	_ = os.Remove(*socket)
}
