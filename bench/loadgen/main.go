// Command spanprof-loadgen is a closed-loop HTTP/1.1 load generator for bench/server_bench.py.
//
// It posts pre-built request bodies over -c keep-alive connections, one request in flight per
// connection, for -d (after an optional -warmup that is not counted), and prints one JSON object
// on stdout. Python clients cost ~0.35 ms CPU per push on the 2-core bench machine, a third of
// what the server spends; this tool costs a small fraction of that, so the bench measures the
// server rather than the load generator.
//
//	spanprof-loadgen -url http://127.0.0.1:4040/push.v1.PusherService/Push \
//	    -H 'Content-Type: application/proto' -H 'Content-Encoding: gzip' -c 4 -d 8s bodies.bin...
//
// Body files: frames of a 4-byte little-endian length followed by that many bytes, repeated; the
// files' frames are used in the order given. Bodies are sent exactly as read (the client neither
// compresses nor asks for compressed responses), so headers such as Content-Encoding must match.
// Standard library only: it builds offline with `go build`.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxBody bounds one frame, so a corrupt length cannot make the tool allocate gigabytes.
const maxBody = 64 << 20

// readBodies parses frames (uint32 little-endian length, then the bytes). The returned slices
// alias data.
func readBodies(data []byte) ([][]byte, error) {
	var out [][]byte
	for off := 0; off < len(data); {
		if len(data)-off < 4 {
			return nil, fmt.Errorf("truncated length at offset %d (%d bytes left)", off, len(data)-off)
		}
		n := int(binary.LittleEndian.Uint32(data[off:]))
		off += 4
		if n > maxBody {
			return nil, fmt.Errorf("frame %d at offset %d: length %d exceeds the %d-byte limit",
				len(out), off-4, n, maxBody)
		}
		if n > len(data)-off {
			return nil, fmt.Errorf("frame %d at offset %d: length %d but only %d bytes left",
				len(out), off-4, n, len(data)-off)
		}
		out = append(out, data[off:off+n:off+n])
		off += n
	}
	return out, nil
}

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// parseHeaders turns "K: V" strings into a header set; Host goes to the request's Host field.
func parseHeaders(hs []string) (http.Header, string, error) {
	out := http.Header{}
	host := ""
	for _, h := range hs {
		k, v, ok := strings.Cut(h, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, "", fmt.Errorf("header %q: want 'Name: value'", h)
		}
		if strings.EqualFold(k, "Host") {
			host = v
			continue
		}
		out.Add(k, v)
	}
	return out, host, nil
}

type config struct {
	url     string
	header  http.Header
	host    string
	conns   int
	dur     time.Duration
	warmup  time.Duration
	timeout time.Duration
	bodies  [][]byte
}

// worker holds one connection's results; only its own goroutine writes it until run() joins.
type worker struct {
	lat      []time.Duration // measured-window requests only
	requests int             // measured window: requests completed (any outcome)
	ok       int
	errs     map[string]int
	totalReq int // whole run, warm-up and the request in flight at the deadline included
	totalOK  int
	firstErr string
}

type result struct {
	Requests      int            `json:"requests"`
	OK            int            `json:"ok"`
	Errors        map[string]int `json:"errors"`
	FirstError    string         `json:"first_error,omitempty"`
	Seconds       float64        `json:"seconds"`
	PushesPerS    float64        `json:"pushes_per_s"`
	LatencyMs     map[string]any `json:"latency_ms"`
	CPUSeconds    float64        `json:"cpu_seconds"`
	CPUSysSeconds float64        `json:"cpu_sys_seconds"` // on loopback most of it is TCP work
	CPUMsPerReq   float64        `json:"cpu_ms_per_request"`
	Connections   int            `json:"connections"`
	Dials         int64          `json:"dials"`
	Bodies        int            `json:"bodies"`
	WarmupSeconds float64        `json:"warmup_seconds"`
	TotalRequests int            `json:"total_requests"`
	TotalOK       int            `json:"total_ok"`
}

// cpuSeconds returns this process's user and system CPU time (all threads).
func cpuSeconds() [2]float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return [2]float64{}
	}
	return [2]float64{time.Duration(ru.Utime.Nano()).Seconds(), time.Duration(ru.Stime.Nano()).Seconds()}
}

// percentile of sorted durations in ms (nearest rank); 0 when empty.
func percentile(xs []time.Duration, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(p/100*float64(len(xs)-1) + 0.5)
	return float64(xs[i].Microseconds()) / 1000
}

func run(cfg config) result {
	var dials int64
	dialer := &net.Dialer{Timeout: 10 * time.Second} // Go sets TCP_NODELAY on TCP conns by default
	workers := make([]*worker, cfg.conns)
	clients := make([]*http.Client, cfg.conns)
	for i := range workers {
		workers[i] = &worker{errs: map[string]int{}}
		// One Transport per worker: its single idle connection is that worker's keep-alive
		// connection, so -c is exactly the number of connections (redialled only after an error).
		tr := &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				atomic.AddInt64(&dials, 1)
				return dialer.DialContext(ctx, network, addr)
			},
			MaxIdleConns:          1,
			MaxIdleConnsPerHost:   1,
			MaxConnsPerHost:       1,
			DisableCompression:    true, // no Accept-Encoding: gzip, bodies are sent as given
			ForceAttemptHTTP2:     false,
			TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{}, // no HTTP/2
			ResponseHeaderTimeout: cfg.timeout,
		}
		clients[i] = &http.Client{Transport: tr, Timeout: cfg.timeout}
	}

	start := time.Now()
	measureFrom := start.Add(cfg.warmup)
	end := measureFrom.Add(cfg.dur)
	// Process CPU (all threads) over the measured window, read by timers at its two ends.
	cpuFrom, cpuTo := make(chan [2]float64, 1), make(chan [2]float64, 1)
	time.AfterFunc(cfg.warmup, func() { cpuFrom <- cpuSeconds() })
	time.AfterFunc(time.Until(end), func() { cpuTo <- cpuSeconds() })
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w, c := workers[i], clients[i]
			n := len(cfg.bodies)
			next := i * n / cfg.conns // connections start spread over the bodies: distinct ids
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				body := cfg.bodies[next]
				next = (next + 1) % n
				status, err := post(c, cfg, body)
				t1 := time.Now()
				w.totalReq++
				if err == nil && status/100 == 2 {
					w.totalOK++
				}
				// Counted: started after the warm-up and answered by the deadline, so the rate is
				// requests per second of the measured window.
				if !t0.Before(measureFrom) && t1.Before(end) {
					w.requests++
					w.lat = append(w.lat, t1.Sub(t0))
					switch {
					case err != nil:
						w.errs["transport"]++
					case status/100 == 2:
						w.ok++
					default:
						w.errs[fmt.Sprintf("status_%d", status)]++
					}
				}
				if err != nil {
					if w.firstErr == "" {
						w.firstErr = err.Error()
					}
					time.Sleep(10 * time.Millisecond) // a dead server must not turn this into a spin
				}
			}
		}(i)
	}
	wg.Wait() // workers return only after the deadline, so both timers have fired or will
	from := <-cpuFrom
	to := <-cpuTo

	res := result{Errors: map[string]int{}, Connections: cfg.conns, Bodies: len(cfg.bodies),
		Seconds: cfg.dur.Seconds(), WarmupSeconds: cfg.warmup.Seconds()}
	var lat []time.Duration
	for _, w := range workers {
		res.Requests += w.requests
		res.OK += w.ok
		res.TotalRequests += w.totalReq
		res.TotalOK += w.totalOK
		for k, v := range w.errs {
			res.Errors[k] += v
		}
		if res.FirstError == "" {
			res.FirstError = w.firstErr
		}
		lat = append(lat, w.lat...)
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	res.PushesPerS = float64(res.OK) / res.Seconds
	res.LatencyMs = map[string]any{"p50": percentile(lat, 50), "p90": percentile(lat, 90),
		"p99": percentile(lat, 99), "max": percentile(lat, 100)}
	res.CPUSeconds = to[0] + to[1] - from[0] - from[1]
	res.CPUSysSeconds = to[1] - from[1]
	if res.Requests > 0 {
		res.CPUMsPerReq = res.CPUSeconds * 1000 / float64(res.Requests)
	}
	res.Dials = atomic.LoadInt64(&dials)
	return res
}

// post sends one request and drains the response, which keep-alive reuse requires.
func post(c *http.Client, cfg config, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, cfg.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = cfg.header.Clone()
	if cfg.host != "" {
		req.Host = cfg.host
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func main() {
	var hs headerFlags
	url := flag.String("url", "", "URL to POST to (http only)")
	flag.Var(&hs, "H", "request header 'Name: value' (repeatable)")
	conns := flag.Int("c", 4, "concurrent keep-alive connections, one request in flight each")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", 0, "load before the measured window, not counted")
	timeout := flag.Duration("timeout", 60*time.Second, "per-request timeout")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] BODYFILE...\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if os.Getenv("GOMAXPROCS") == "" {
		// One P is plenty for a closed loop of a few connections and cheaper: on the 2-core bench
		// VM, 0.27-0.33 ms CPU per push against 0.31-0.39 ms with GOMAXPROCS=2 (fewer
		// cross-thread wakeups). About half of it is system time: loopback TCP charges the
		// receiver's side of each 15 KB body to the sender.
		runtime.GOMAXPROCS(1)
	}
	if err := mainErr(*url, hs, *conns, *dur, *warmup, *timeout, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "spanprof-loadgen:", err)
		os.Exit(1)
	}
}

func mainErr(url string, hs []string, conns int, dur, warmup, timeout time.Duration,
	files []string) error {
	if !strings.HasPrefix(url, "http://") {
		return errors.New("-url must be an http:// URL")
	}
	if conns < 1 || dur <= 0 || warmup < 0 || timeout <= 0 {
		return errors.New("need -c >= 1, -d > 0, -warmup >= 0, -timeout > 0")
	}
	if len(files) == 0 {
		return errors.New("no body files given")
	}
	header, host, err := parseHeaders(hs)
	if err != nil {
		return err
	}
	var bodies [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		b, err := readBodies(data)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		bodies = append(bodies, b...)
	}
	if len(bodies) == 0 {
		return errors.New("the body files hold no frames")
	}
	res := run(config{url: url, header: header, host: host, conns: conns, dur: dur,
		warmup: warmup, timeout: timeout, bodies: bodies})
	return json.NewEncoder(os.Stdout).Encode(res)
}
