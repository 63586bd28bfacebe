// Command goclient is the grpc-go load generator of `make bench`, the second client beside
// `vmssctl bench`, so no figure depends on one client's habits.
//
// Two modes:
//
//	-mode loop    closed loop: -concurrency callers on each of -connections connections, each
//	              sending its next call as soon as the previous one is answered, for -seconds
//	              after -warmup; prints one JSON line in the shape `vmssctl bench` prints.
//	-mode rounds  paced questions: every -interval, all IDs at once (one goroutine each), for
//	              -rounds rounds; prints the answers counted and the time to the last answer.
//	              Used for the deletion story and the cold start.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	pb "vmssd/clients/go/instancesv1"
)

func dial(socket string) *grpc.ClientConn {
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, "unix://"+socket, grpc.WithInsecure(),
		grpc.WithContextDialer(dialer), grpc.WithBlock())
	if err != nil {
		log.Fatalf("goclient: cannot connect to %s: %v", socket, err)
	}
	return conn
}

// sample is a process's CPU time (user+system, microseconds) and RSS (bytes) from /proc.
type sample struct {
	cpuMicros int64
	rssBytes  int64
	ok        bool
}

func readSample(pid int) sample {
	if pid <= 0 {
		return sample{}
	}
	stat, err1 := ioutil.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	statm, err2 := ioutil.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err1 != nil || err2 != nil {
		return sample{}
	}
	text := string(stat)
	fields := strings.Fields(text[strings.LastIndexByte(text, ')')+1:])
	pages := strings.Fields(string(statm))
	if len(fields) < 13 || len(pages) < 2 {
		return sample{}
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	resident, _ := strconv.ParseInt(pages[1], 10, 64)
	// USER_HZ is 100 on every Linux this runs on; Go has no sysconf without cgo.
	return sample{cpuMicros: (utime + stime) * 10000, rssBytes: resident * int64(os.Getpagesize()), ok: true}
}

func percentile(sorted []int64, fraction float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	index := int(float64(len(sorted))*fraction+0.999999) - 1
	if index < 0 {
		index = 0
	}
	if index >= len(sorted) {
		index = len(sorted) - 1
	}
	return sorted[index]
}

func loop(socket string, ids []string, connections, concurrency int, seconds, warmup float64, pid int) {
	clients := make([]pb.InstancesClient, connections)
	conns := make([]*grpc.ClientConn, connections)
	for i := range clients {
		conns[i] = dial(socket)
		clients[i] = pb.NewInstancesClient(conns[i])
	}
	var measuring int32
	var next uint64
	var errors int64
	start := time.Now()
	warmEnd := start.Add(time.Duration(warmup * float64(time.Second)))
	end := warmEnd.Add(time.Duration(seconds * float64(time.Second)))
	perSlot := make([][]int64, connections*concurrency)
	var wg sync.WaitGroup
	for c := 0; c < connections; c++ {
		for s := 0; s < concurrency; s++ {
			wg.Add(1)
			go func(client pb.InstancesClient, slot int) {
				defer wg.Done()
				latencies := make([]int64, 0, 1<<16)
				ctx := context.Background()
				for {
					began := time.Now()
					if !began.Before(end) {
						break
					}
					id := ids[atomic.AddUint64(&next, 1)%uint64(len(ids))]
					_, err := client.InstanceExistsByProviderID(ctx, &pb.ProviderIDRequest{ProviderId: id})
					if atomic.LoadInt32(&measuring) == 1 {
						latencies = append(latencies, int64(time.Since(began)/time.Microsecond))
						if err != nil {
							atomic.AddInt64(&errors, 1)
						}
					}
				}
				perSlot[slot] = latencies
			}(clients[c], c*concurrency+s)
		}
	}
	time.Sleep(time.Until(warmEnd))
	before := readSample(pid)
	atomic.StoreInt32(&measuring, 1)
	measuredStart := time.Now()
	wg.Wait()
	measured := time.Since(measuredStart).Seconds()
	after := readSample(pid)
	for _, conn := range conns {
		conn.Close()
	}
	var all []int64
	for _, l := range perSlot {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	out := map[string]interface{}{
		"client": "grpc-go", "method": "InstanceExistsByProviderID", "connections": connections,
		"concurrency": concurrency, "calls": len(all), "errors": errors, "seconds": measured,
		"calls_per_second": float64(len(all)) / measured,
		"p50_us": percentile(all, 0.5), "p99_us": percentile(all, 0.99),
	}
	if before.ok && after.ok {
		cpu := after.cpuMicros - before.cpuMicros
		out["server_cpu_us"] = cpu
		out["server_cpu_us_per_call"] = float64(cpu) / float64(max(len(all), 1))
		out["server_rss_bytes"] = after.rssBytes
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}

func max(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func rounds(socket string, ids []string, connections, count int, interval, timeout time.Duration) {
	clients := make([]pb.InstancesClient, connections)
	for i := range clients {
		clients[i] = pb.NewInstancesClient(dial(socket))
	}
	var yes, no, failed int64
	var lastAnswer int64 // nanoseconds after the first round began
	var firstError atomic.Value
	start := time.Now()
	var lastSent time.Duration
	for r := 0; r < count; r++ {
		// Rounds are scheduled on absolute times, so a slow answer never stretches the story.
		time.Sleep(time.Until(start.Add(time.Duration(r) * interval)))
		lastSent = time.Since(start)
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Add(1)
			go func(client pb.InstancesClient, id string) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				reply, err := client.InstanceExistsByProviderID(ctx, &pb.ProviderIDRequest{ProviderId: id})
				switch {
				case err != nil:
					atomic.AddInt64(&failed, 1)
					firstError.Store(err.Error())
				case reply.Exists:
					atomic.AddInt64(&yes, 1)
				default:
					atomic.AddInt64(&no, 1)
				}
				at := int64(time.Since(start))
				for {
					seen := atomic.LoadInt64(&lastAnswer)
					if at <= seen || atomic.CompareAndSwapInt64(&lastAnswer, seen, at) {
						break
					}
				}
			}(clients[i%connections], id)
		}
		if r == count-1 {
			wg.Wait()
		}
	}
	time.Sleep(50 * time.Millisecond)
	out := map[string]interface{}{
		"client": "grpc-go", "rounds": count, "questions": int64(count) * int64(len(ids)),
		"true": atomic.LoadInt64(&yes), "false": atomic.LoadInt64(&no),
		"errors": atomic.LoadInt64(&failed), "last_sent_s": lastSent.Seconds(),
		"last_answer_s": float64(atomic.LoadInt64(&lastAnswer)) / 1e9,
	}
	if e, ok := firstError.Load().(string); ok {
		out["first_error"] = e
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}

func main() {
	socket := flag.String("socket", "", "Unix socket of the server (required)")
	mode := flag.String("mode", "loop", "loop or rounds")
	idsFile := flag.String("provider-ids-file", "", "provider IDs, one a line (required)")
	connections := flag.Int("connections", 1, "connections")
	concurrency := flag.Int("concurrency", 16, "callers per connection (loop)")
	seconds := flag.Float64("seconds", 5, "measured seconds (loop)")
	warmup := flag.Float64("warmup", 1, "unmeasured seconds first (loop)")
	pid := flag.Int("server-pid", 0, "server process whose CPU and RSS to sample (loop)")
	count := flag.Int("rounds", 1, "rounds (rounds)")
	interval := flag.Duration("interval", 100*time.Millisecond, "time between rounds (rounds)")
	timeout := flag.Duration("timeout", 30*time.Second, "deadline of each call (rounds)")
	flag.Parse()
	data, err := ioutil.ReadFile(*idsFile)
	if *socket == "" || err != nil {
		log.Fatalf("goclient: -socket and a readable -provider-ids-file are required (%v)", err)
	}
	var ids []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			ids = append(ids, line)
		}
	}
	if len(ids) == 0 || *connections < 1 || *concurrency < 1 || *count < 1 || *count > 100000 {
		log.Fatal("goclient: need IDs, positive counts and at most 100000 rounds")
	}
	switch *mode {
	case "loop":
		loop(*socket, ids, *connections, *concurrency, *seconds, *warmup, *pid)
	case "rounds":
		rounds(*socket, ids, *connections, *count, *interval, *timeout)
	default:
		log.Fatalf("goclient: unknown -mode %q", *mode)
	}
}
