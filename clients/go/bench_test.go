package vmssdclient

import (
	"context"
	"os"
	"testing"
)

// BenchmarkInstanceExistsByProviderID measures one existence call through the client at 16
// concurrent callers on one connection. By default the server is the in-process fake; with
// VMSSD_BENCH_SOCKET (and VMSSD_BENCH_ID, an ID that exists) it is whatever listens there, so
// vmssd and benchmarks/goserver can be compared with the same client.
func BenchmarkInstanceExistsByProviderID(b *testing.B) {
	socket, id := os.Getenv("VMSSD_BENCH_SOCKET"), os.Getenv("VMSSD_BENCH_ID")
	if socket == "" || id == "" {
		_, socket = startFake(b)
		id = liveID
	}
	client, err := New(socket)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	if exists, err := client.InstanceExistsByProviderID(context.Background(), id); err != nil || !exists {
		b.Fatalf("warm-up call: %v, %v", exists, err)
	}

	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := client.InstanceExistsByProviderID(ctx, id); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
