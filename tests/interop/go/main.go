// Command interopclient checks, with grpc-go 1.33 as a controller manager would use it, that a
// server on a Unix socket speaks cloudprovider.instances.v1.Instances and grpc.health.v1.Health
// correctly: answers, status codes, limits, concurrency and health streaming.
//
// Expectations are JSON, from -expect FILE or "-" for stdin:
//
//	{"exists": [ids], "gone": [ids], "shutdown": [ids], "running": [ids],
//	 "not_found_metadata": [ids],
//	 "metadata": [{"node_name", "provider_id", "instance_type", "zone", "region",
//	               "node_addresses": [{"type", "address"}]}],
//	 "slow": "an ID the server answers only after the deadline"}
//
// It prints one "PASS name: detail" or "FAIL name: detail" line per check and exits 1 when any
// check failed, 2 when it could not run at all. With -watch it only streams health Watch.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "vmssd/clients/go/instancesv1"
)

type expectations struct {
	Exists           []string   `json:"exists"`
	Gone             []string   `json:"gone"`
	Shutdown         []string   `json:"shutdown"`
	Running          []string   `json:"running"`
	NotFoundMetadata []string   `json:"not_found_metadata"`
	Metadata         []metadata `json:"metadata"`
	Slow             string     `json:"slow"`
}

type metadata struct {
	NodeName      string        `json:"node_name"`
	ProviderID    string        `json:"provider_id"`
	InstanceType  string        `json:"instance_type"`
	Zone          string        `json:"zone"`
	Region        string        `json:"region"`
	NodeAddresses []nodeAddress `json:"node_addresses"`
}

type nodeAddress struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

type checker struct {
	conn      *grpc.ClientConn
	instances pb.InstancesClient
	health    healthpb.HealthClient
	timeout   time.Duration
	skip      map[string]bool
	failures  int
	passes    int
}

func (c *checker) report(name string, err error, detail string) {
	if err != nil {
		c.failures++
		fmt.Printf("FAIL %s: %v\n", name, err)
		return
	}
	c.passes++
	fmt.Printf("PASS %s: %s\n", name, detail)
}

func (c *checker) run(name string, check func(ctx context.Context) (string, error)) {
	if c.skip[name] {
		fmt.Printf("SKIP %s: skipped by -skip\n", name)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	detail, err := check(ctx)
	c.report(name, err, detail)
}

func wantCode(err error, want codes.Code) error {
	if got := status.Code(err); got != want {
		return fmt.Errorf("status %v (%v), want %v", got, err, want)
	}
	return nil
}

func (c *checker) checkAnswers(want expectations) {
	type boolCase struct {
		ids  []string
		want bool
	}
	for _, tc := range []boolCase{{want.Exists, true}, {want.Gone, false}} {
		for _, id := range tc.ids {
			id, expected := id, tc.want
			c.run("exists-by-provider-id", func(ctx context.Context) (string, error) {
				r, err := c.instances.InstanceExistsByProviderID(ctx, &pb.ProviderIDRequest{ProviderId: id})
				if err != nil || r.Exists != expected {
					return "", fmt.Errorf("%s: got %v, %v; want %v", id, r.GetExists(), err, expected)
				}
				return fmt.Sprintf("%s -> %v", id, expected), nil
			})
			c.run("exists-by-node", func(ctx context.Context) (string, error) {
				r, err := c.instances.InstanceExists(ctx, &pb.NodeRequest{ProviderId: id})
				if err != nil || r.Exists != expected {
					return "", fmt.Errorf("%s: got %v, %v; want %v", id, r.GetExists(), err, expected)
				}
				return fmt.Sprintf("%s -> %v", id, expected), nil
			})
		}
	}
	for _, tc := range []boolCase{{want.Shutdown, true}, {want.Running, false}} {
		for _, id := range tc.ids {
			id, expected := id, tc.want
			c.run("shutdown-by-provider-id", func(ctx context.Context) (string, error) {
				r, err := c.instances.InstanceShutdownByProviderID(ctx, &pb.ProviderIDRequest{ProviderId: id})
				if err != nil || r.Shutdown != expected {
					return "", fmt.Errorf("%s: got %v, %v; want %v", id, r.GetShutdown(), err, expected)
				}
				return fmt.Sprintf("%s -> %v", id, expected), nil
			})
			c.run("shutdown-by-node", func(ctx context.Context) (string, error) {
				r, err := c.instances.InstanceShutdown(ctx, &pb.NodeRequest{ProviderId: id})
				if err != nil || r.Shutdown != expected {
					return "", fmt.Errorf("%s: got %v, %v; want %v", id, r.GetShutdown(), err, expected)
				}
				return fmt.Sprintf("%s -> %v", id, expected), nil
			})
		}
	}
	for _, id := range want.NotFoundMetadata {
		id := id
		c.run("metadata-not-found", func(ctx context.Context) (string, error) {
			_, err := c.instances.InstanceMetadata(ctx, &pb.NodeRequest{ProviderId: id})
			return id + " -> NOT_FOUND", wantCode(err, codes.NotFound)
		})
	}
	for _, m := range want.Metadata {
		m := m
		c.run("metadata", func(ctx context.Context) (string, error) {
			r, err := c.instances.InstanceMetadata(ctx, &pb.NodeRequest{NodeName: m.NodeName, ProviderId: m.ProviderID})
			if err != nil {
				return "", fmt.Errorf("%s/%s: %v", m.NodeName, m.ProviderID, err)
			}
			if m.ProviderID != "" && !strings.EqualFold(r.ProviderId, m.ProviderID) {
				return "", fmt.Errorf("provider ID %q, want %q", r.ProviderId, m.ProviderID)
			}
			if r.InstanceType != m.InstanceType || r.Zone != m.Zone || r.Region != m.Region {
				return "", fmt.Errorf("%s: type %q zone %q region %q; want %q %q %q", m.ProviderID,
					r.InstanceType, r.Zone, r.Region, m.InstanceType, m.Zone, m.Region)
			}
			if m.NodeAddresses != nil {
				var got []nodeAddress
				for _, a := range r.NodeAddresses {
					got = append(got, nodeAddress{Type: a.Type, Address: a.Address})
				}
				if fmt.Sprint(got) != fmt.Sprint(m.NodeAddresses) {
					return "", fmt.Errorf("%s: addresses %v, want %v", m.ProviderID, got, m.NodeAddresses)
				}
			}
			return fmt.Sprintf("%s -> %s %s", m.ProviderID, r.InstanceType, r.Zone), nil
		})
	}
	ids := append(append([]string{}, want.Exists...), want.Gone...)
	if len(ids) > 0 {
		c.run("instances-exist-batch", func(ctx context.Context) (string, error) {
			r, err := c.instances.InstancesExist(ctx, &pb.InstancesExistRequest{ProviderIds: ids})
			if err != nil {
				return "", err
			}
			if len(r.Verdicts) != len(ids) {
				return "", fmt.Errorf("%d verdicts for %d IDs", len(r.Verdicts), len(ids))
			}
			for i, v := range r.Verdicts {
				expected := i < len(want.Exists)
				if v.Code != 0 || v.Exists != expected || !strings.EqualFold(v.ProviderId, ids[i]) {
					return "", fmt.Errorf("verdict %d = %+v, want %s exists=%v", i, v, ids[i], expected)
				}
			}
			return fmt.Sprintf("%d verdicts in order", len(ids)), nil
		})
	}
}

func (c *checker) checkProtocol(want expectations, concurrency int) {
	c.run("unknown-method-unimplemented", func(ctx context.Context) (string, error) {
		err := c.conn.Invoke(ctx, "/cloudprovider.instances.v1.Instances/NoSuchMethod",
			&pb.ProviderIDRequest{ProviderId: "x"}, &pb.ExistsResponse{})
		return "NoSuchMethod -> UNIMPLEMENTED", wantCode(err, codes.Unimplemented)
	})
	c.run("unknown-service-unimplemented", func(ctx context.Context) (string, error) {
		err := c.conn.Invoke(ctx, "/no.such.v1.Service/Method", &pb.ProviderIDRequest{}, &pb.ExistsResponse{})
		return "no.such.v1.Service -> UNIMPLEMENTED", wantCode(err, codes.Unimplemented)
	})
	if want.Slow != "" {
		c.run("deadline-exceeded", func(ctx context.Context) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			started := time.Now()
			_, err := c.instances.InstanceExistsByProviderID(ctx, &pb.ProviderIDRequest{ProviderId: want.Slow})
			elapsed := time.Since(started)
			if err := wantCode(err, codes.DeadlineExceeded); err != nil {
				return "", err
			}
			if elapsed > 2*time.Second {
				return "", fmt.Errorf("a 300ms deadline took %v to fire", elapsed)
			}
			return fmt.Sprintf("300ms deadline -> DEADLINE_EXCEEDED after %v", elapsed.Round(time.Millisecond)), nil
		})
	} else {
		fmt.Println("SKIP deadline-exceeded: no slow provider ID given")
	}
	c.run("oversized-request-resource-exhausted", func(ctx context.Context) (string, error) {
		big := "azure:///" + strings.Repeat("x", 5<<20)
		_, err := c.instances.InstanceExistsByProviderID(ctx, &pb.ProviderIDRequest{ProviderId: big})
		return "5 MiB request -> RESOURCE_EXHAUSTED", wantCode(err, codes.ResourceExhausted)
	})
	c.run("connection-survives-errors", func(ctx context.Context) (string, error) {
		_, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{})
		return "a call after the failures above still succeeds", err
	})
	if len(want.Exists) > 0 {
		c.run("concurrent-calls-one-connection", func(ctx context.Context) (string, error) {
			return c.concurrent(ctx, want.Exists, concurrency)
		})
	} else {
		fmt.Println("SKIP concurrent-calls-one-connection: no existing provider ID given")
	}
	c.run("health-check", func(ctx context.Context) (string, error) {
		r, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{Service: ""})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			return "", fmt.Errorf("got %v, %v; want SERVING", r.GetStatus(), err)
		}
		return `Check("") -> SERVING`, nil
	})
	c.run("health-check-unknown-service", func(ctx context.Context) (string, error) {
		_, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
		return `Check("no.such.Service") -> NOT_FOUND`, wantCode(err, codes.NotFound)
	})
	c.run("health-watch-first-message", func(ctx context.Context) (string, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.health.Watch(ctx, &healthpb.HealthCheckRequest{Service: ""})
		if err != nil {
			return "", err
		}
		r, err := stream.Recv()
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			return "", fmt.Errorf("first message %v, %v; want SERVING", r.GetStatus(), err)
		}
		return `Watch("") first message -> SERVING`, nil
	})
}

// concurrent fires n calls at once over the checker's single connection.
func (c *checker) concurrent(ctx context.Context, ids []string, n int) (string, error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	started := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			r, err := c.instances.InstanceExistsByProviderID(ctx, &pb.ProviderIDRequest{ProviderId: id})
			if err == nil && !r.Exists {
				err = fmt.Errorf("%s answered false", id)
			}
			if err != nil {
				errs <- err
			}
		}(ids[i%len(ids)])
	}
	wg.Wait()
	close(errs)
	failed := 0
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
		failed++
	}
	if failed > 0 {
		return "", fmt.Errorf("%d of %d concurrent calls failed; first: %v", failed, n, first)
	}
	return fmt.Sprintf("%d calls in %v", n, time.Since(started).Round(time.Millisecond)), nil
}

// watchHealth streams Watch("") and prints one "WATCH <status>" line per message, flushed at
// once, then "WATCH END <code>" when the server ends the stream: a test can stop the server
// after the first line and read what the client saw.
func watchHealth(health healthpb.HealthClient, timeout time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stream, err := health.Watch(ctx, &healthpb.HealthCheckRequest{Service: ""})
	if err != nil {
		fmt.Printf("WATCH END %v\n", status.Code(err))
		return 1
	}
	for {
		r, err := stream.Recv()
		if err != nil {
			fmt.Printf("WATCH END %v\n", status.Code(err))
			return 0
		}
		fmt.Printf("WATCH %v\n", r.Status)
		os.Stdout.Sync()
	}
}

func readExpectations(path string) (expectations, error) {
	var want expectations
	if path == "" {
		return want, nil
	}
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return want, err
	}
	err = json.Unmarshal(data, &want)
	return want, err
}

func main() {
	socket := flag.String("socket", "", "Unix socket of the server (required)")
	authority := flag.String("authority", "", "override the :authority header (default: localhost)")
	expectFile := flag.String("expect", "", `JSON expectations file, or "-" for stdin`)
	slow := flag.String("slow", "", "provider ID the server answers slowly (overrides the JSON)")
	concurrency := flag.Int("concurrency", 200, "concurrent calls on the one connection")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of each check")
	skip := flag.String("skip", "", "comma-separated check names to skip")
	watch := flag.Bool("watch", false, "only stream health Watch, printing each status")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "interopclient: -socket is required")
		os.Exit(2)
	}
	want, err := readExpectations(*expectFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "interopclient: expectations: %v\n", err)
		os.Exit(2)
	}
	if *slow != "" {
		want.Slow = *slow
	}

	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", *socket)
	}
	options := []grpc.DialOption{grpc.WithInsecure(), grpc.WithContextDialer(dialer), grpc.WithBlock()}
	if *authority != "" {
		options = append(options, grpc.WithAuthority(*authority))
	}
	dialCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	conn, err := grpc.DialContext(dialCtx, "unix://"+*socket, options...)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "interopclient: connecting to %s: %v\n", *socket, err)
		os.Exit(2)
	}
	defer conn.Close()

	if *watch {
		os.Exit(watchHealth(healthpb.NewHealthClient(conn), *timeout))
	}
	c := &checker{
		conn:      conn,
		instances: pb.NewInstancesClient(conn),
		health:    healthpb.NewHealthClient(conn),
		timeout:   *timeout,
		skip:      map[string]bool{},
	}
	for _, name := range strings.Split(*skip, ",") {
		if name != "" {
			c.skip[name] = true
		}
	}
	c.checkAnswers(want)
	c.checkProtocol(want, *concurrency)
	fmt.Printf("interopclient: %d passed, %d failed\n", c.passes, c.failures)
	if c.failures > 0 {
		os.Exit(1)
	}
}
