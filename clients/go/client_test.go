package vmssdclient

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "vmssd/clients/go/instancesv1"
)

// fakeInstances answers from fixed tables and records what it was asked.
type fakeInstances struct {
	pb.UnimplementedInstancesServer
	mu        sync.Mutex
	lastNode  *pb.NodeRequest
	exists    map[string]bool
	shutdown  map[string]bool
	failures  map[string]*status.Status
	pushback  map[string]string
	sleep     time.Duration
	authority string
}

func (f *fakeInstances) fail(ctx context.Context, id string) error {
	f.mu.Lock()
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md[":authority"]) > 0 {
		f.authority = md[":authority"][0]
	}
	st, failing := f.failures[id]
	pushback, hasPushback := f.pushback[id]
	sleep := f.sleep
	f.mu.Unlock()
	if sleep > 0 {
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !failing {
		return nil
	}
	if hasPushback {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", pushback))
	}
	return st.Err()
}

func (f *fakeInstances) InstanceExistsByProviderID(ctx context.Context, r *pb.ProviderIDRequest) (*pb.ExistsResponse, error) {
	if err := f.fail(ctx, r.ProviderId); err != nil {
		return nil, err
	}
	return &pb.ExistsResponse{Exists: f.exists[r.ProviderId]}, nil
}

func (f *fakeInstances) InstanceShutdownByProviderID(ctx context.Context, r *pb.ProviderIDRequest) (*pb.ShutdownResponse, error) {
	if err := f.fail(ctx, r.ProviderId); err != nil {
		return nil, err
	}
	return &pb.ShutdownResponse{Shutdown: f.shutdown[r.ProviderId]}, nil
}

func (f *fakeInstances) record(r *pb.NodeRequest) {
	f.mu.Lock()
	f.lastNode = r
	f.mu.Unlock()
}

func (f *fakeInstances) InstanceExists(ctx context.Context, r *pb.NodeRequest) (*pb.ExistsResponse, error) {
	f.record(r)
	if err := f.fail(ctx, r.ProviderId); err != nil {
		return nil, err
	}
	return &pb.ExistsResponse{Exists: f.exists[r.ProviderId]}, nil
}

func (f *fakeInstances) InstanceShutdown(ctx context.Context, r *pb.NodeRequest) (*pb.ShutdownResponse, error) {
	f.record(r)
	if err := f.fail(ctx, r.ProviderId); err != nil {
		return nil, err
	}
	return &pb.ShutdownResponse{Shutdown: f.shutdown[r.ProviderId]}, nil
}

func (f *fakeInstances) InstanceMetadata(ctx context.Context, r *pb.NodeRequest) (*pb.InstanceMetadataResponse, error) {
	f.record(r)
	if err := f.fail(ctx, r.ProviderId); err != nil {
		return nil, err
	}
	return &pb.InstanceMetadataResponse{
		ProviderId:   r.ProviderId,
		InstanceType: "Standard_D4s_v5",
		NodeAddresses: []*pb.NodeAddress{
			{Type: "InternalIP", Address: "10.240.0.4"},
			{Type: "Hostname", Address: r.NodeName},
		},
		Zone:   "westeurope-2",
		Region: "westeurope",
	}, nil
}

func (f *fakeInstances) InstancesExist(ctx context.Context, r *pb.InstancesExistRequest) (*pb.InstancesExistResponse, error) {
	resp := &pb.InstancesExistResponse{}
	for _, id := range r.ProviderIds {
		v := &pb.InstanceVerdict{ProviderId: id, Exists: f.exists[id]}
		if st, failing := f.failures[id]; failing {
			v.Exists = true // a careless server; the client must not trust it
			v.Code = int32(st.Code())
			v.Message = st.Message()
		}
		resp.Verdicts = append(resp.Verdicts, v)
	}
	return resp, nil
}

const (
	liveID     = "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/0"
	stoppedID  = "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/1"
	goneID     = "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/gone/virtualMachines/0"
	missingID  = "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/missing"
	throttleID = "azure:///subscriptions/s/resourceGroups/throttled/providers/Microsoft.Compute/virtualMachines/a"
	downID     = "azure:///subscriptions/s/resourceGroups/down/providers/Microsoft.Compute/virtualMachines/a"
	invalidID  = "not a provider id"
)

func startFake(t testing.TB) (*fakeInstances, string) {
	t.Helper()
	fake := &fakeInstances{
		exists:   map[string]bool{liveID: true, stoppedID: true, goneID: false},
		shutdown: map[string]bool{stoppedID: true},
		failures: map[string]*status.Status{
			missingID:  status.New(codes.NotFound, "virtual machine missing not found"),
			throttleID: status.New(codes.Unavailable, "Azure is throttling reads"),
			downID:     status.New(codes.Unavailable, "shutting down"),
			invalidID:  status.New(codes.InvalidArgument, "provider ID is not azure://"),
		},
		pushback: map[string]string{throttleID: "1500"},
	}
	socket := filepath.Join(t.TempDir(), "vmssd.sock")
	listener, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	server := grpc.NewServer()
	pb.RegisterInstancesServer(server, fake)
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	return fake, socket
}

func newClient(t *testing.T, socket string, opts ...Option) *Client {
	t.Helper()
	client, err := New(socket, append([]Option{WithDialTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestExistenceAnswersComeBackAsBooleans(t *testing.T) {
	_, socket := startFake(t)
	client := newClient(t, socket)
	ctx := context.Background()

	for id, want := range map[string]bool{liveID: true, goneID: false} {
		got, err := client.InstanceExistsByProviderID(ctx, id)
		if err != nil || got != want {
			t.Errorf("InstanceExistsByProviderID(%s) = %v, %v; want %v, nil", id, got, err, want)
		}
		got, err = client.InstanceExists(ctx, &Node{Name: "n", ProviderID: id})
		if err != nil || got != want {
			t.Errorf("InstanceExists(%s) = %v, %v; want %v, nil", id, got, err, want)
		}
	}
}

func TestShutdownAnswersComeBackAsBooleans(t *testing.T) {
	_, socket := startFake(t)
	client := newClient(t, socket)
	ctx := context.Background()

	if got, err := client.InstanceShutdown(ctx, &Node{ProviderID: stoppedID}); err != nil || !got {
		t.Errorf("InstanceShutdown(stopped) = %v, %v; want true", got, err)
	}
	if got, err := client.InstanceShutdownByProviderID(ctx, liveID); err != nil || got {
		t.Errorf("InstanceShutdownByProviderID(live) = %v, %v; want false", got, err)
	}
}

func TestNodeFieldsReachTheServer(t *testing.T) {
	fake, socket := startFake(t)
	client := newClient(t, socket)
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

	if _, err := client.InstanceExists(context.Background(), &Node{Name: "aks-pool-000001", ProviderID: liveID, CreationTimestamp: created}); err != nil {
		t.Fatalf("InstanceExists: %v", err)
	}

	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.lastNode.NodeName != "aks-pool-000001" || fake.lastNode.ProviderId != liveID || fake.lastNode.CreationUnixSeconds != created.Unix() {
		t.Errorf("server saw %+v", fake.lastNode)
	}
	if fake.authority != "localhost" {
		t.Errorf("authority = %q, want grpc-go's default for Unix sockets, localhost", fake.authority)
	}
}

func TestUnknownCreationTimeIsSentAsZero(t *testing.T) {
	fake, socket := startFake(t)
	client := newClient(t, socket)

	if _, err := client.InstanceExists(context.Background(), &Node{Name: "n", ProviderID: liveID}); err != nil {
		t.Fatalf("InstanceExists: %v", err)
	}

	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.lastNode.CreationUnixSeconds != 0 {
		t.Errorf("creation seconds = %d, want 0 for an unknown time", fake.lastNode.CreationUnixSeconds)
	}
}

func TestMetadataIsCopiedFieldByField(t *testing.T) {
	_, socket := startFake(t)
	client := newClient(t, socket)

	meta, err := client.InstanceMetadata(context.Background(), &Node{Name: "aks-pool-000000", ProviderID: liveID})
	if err != nil {
		t.Fatalf("InstanceMetadata: %v", err)
	}

	want := InstanceMetadata{
		ProviderID:   liveID,
		InstanceType: "Standard_D4s_v5",
		NodeAddresses: []NodeAddress{
			{Type: "InternalIP", Address: "10.240.0.4"},
			{Type: "Hostname", Address: "aks-pool-000000"},
		},
		Zone:   "westeurope-2",
		Region: "westeurope",
	}
	if meta.ProviderID != want.ProviderID || meta.InstanceType != want.InstanceType || meta.Zone != want.Zone ||
		meta.Region != want.Region || len(meta.NodeAddresses) != 2 ||
		meta.NodeAddresses[0] != want.NodeAddresses[0] || meta.NodeAddresses[1] != want.NodeAddresses[1] {
		t.Errorf("metadata = %+v, want %+v", *meta, want)
	}
}

func TestNotFoundBecomesErrInstanceNotFound(t *testing.T) {
	_, socket := startFake(t)
	client := newClient(t, socket)

	_, err := client.InstanceMetadata(context.Background(), &Node{ProviderID: missingID})

	if !errors.Is(err, ErrInstanceNotFound) {
		t.Fatalf("err = %v, want ErrInstanceNotFound", err)
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("status.Code = %v, want NotFound", status.Code(err))
	}
	if exists, err := client.InstanceExistsByProviderID(context.Background(), missingID); exists || !errors.Is(err, ErrInstanceNotFound) {
		t.Errorf("exists = %v, %v; a NOT_FOUND must stay an error, never become false", exists, err)
	}
}

func TestUnavailableCarriesTheRetryPushback(t *testing.T) {
	_, socket := startFake(t)
	client := newClient(t, socket)

	_, err := client.InstanceExistsByProviderID(context.Background(), throttleID)

	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) {
		t.Fatalf("err = %v, want *UnavailableError", err)
	}
	if !unavailable.HasPushback || unavailable.RetryAfter != 1500*time.Millisecond {
		t.Errorf("pushback = %v/%v, want 1.5s", unavailable.HasPushback, unavailable.RetryAfter)
	}
	if !errors.Is(err, ErrUnavailable) || status.Code(err) != codes.Unavailable {
		t.Errorf("err %v does not match ErrUnavailable / codes.Unavailable", err)
	}
}

func TestUnavailableWithoutPushbackSaysSo(t *testing.T) {
	_, socket := startFake(t)
	client := newClient(t, socket)

	_, err := client.InstanceShutdownByProviderID(context.Background(), downID)

	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) || unavailable.HasPushback {
		t.Fatalf("err = %#v, want an UnavailableError without pushback", err)
	}
}

func TestOtherStatusesPassThrough(t *testing.T) {
	_, socket := startFake(t)
	client := newClient(t, socket)

	_, err := client.InstanceExistsByProviderID(context.Background(), invalidID)

	if status.Code(err) != codes.InvalidArgument || errors.Is(err, ErrInstanceNotFound) {
		t.Errorf("err = %v, want InvalidArgument", err)
	}
}

func TestBatchVerdictsKeepPerIDFailures(t *testing.T) {
	_, socket := startFake(t)
	client := newClient(t, socket)

	verdicts, err := client.InstancesExist(context.Background(), []string{liveID, goneID, throttleID})

	if err != nil || len(verdicts) != 3 {
		t.Fatalf("InstancesExist = %v, %v", verdicts, err)
	}
	if !verdicts[0].Exists || verdicts[0].Err != nil {
		t.Errorf("live verdict = %+v", verdicts[0])
	}
	if verdicts[1].Exists || verdicts[1].Err != nil {
		t.Errorf("gone verdict = %+v", verdicts[1])
	}
	if verdicts[2].Exists || !errors.Is(verdicts[2].Err, ErrUnavailable) {
		t.Errorf("failed verdict = %+v, want Exists false and an unavailable error", verdicts[2])
	}
}

func TestDefaultCallTimeoutBoundsASlowServer(t *testing.T) {
	fake, socket := startFake(t)
	fake.sleep = 2 * time.Second
	client := newClient(t, socket, WithCallTimeout(100*time.Millisecond))

	started := time.Now()
	_, err := client.InstanceExistsByProviderID(context.Background(), liveID)

	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if elapsed := time.Since(started); elapsed > time.Second {
		t.Errorf("call took %v despite a 100ms timeout", elapsed)
	}
}

func TestNilNodeIsRefusedWithoutACall(t *testing.T) {
	_, socket := startFake(t)
	client := newClient(t, socket)

	if _, err := client.InstanceExists(context.Background(), nil); err == nil {
		t.Error("InstanceExists(nil) succeeded")
	}
}

func TestDialTimeoutFailsWhenNothingListens(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "absent.sock")

	_, err := New(socket, WithDialTimeout(200*time.Millisecond))

	if err == nil {
		t.Error("New succeeded with nothing listening")
	}
	if _, statErr := os.Stat(socket); !os.IsNotExist(statErr) {
		t.Errorf("New created %s", socket)
	}
}
