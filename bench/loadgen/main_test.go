package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func frame(bodies ...string) []byte {
	var b bytes.Buffer
	for _, s := range bodies {
		binary.Write(&b, binary.LittleEndian, uint32(len(s)))
		b.WriteString(s)
	}
	return b.Bytes()
}

func TestReadBodies(t *testing.T) {
	got, err := readBodies(frame("abc", "", "defg"))
	if err != nil || len(got) != 3 || string(got[0]) != "abc" || len(got[1]) != 0 ||
		string(got[2]) != "defg" {
		t.Fatalf("got %q, %v", got, err)
	}
	for name, data := range map[string][]byte{
		"short length": append(frame("abc"), 1, 0),
		"short body":   frame("abc")[:5],
		"over limit":   binary.LittleEndian.AppendUint32(nil, maxBody+1),
	} {
		if _, err := readBodies(data); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseHeaders(t *testing.T) {
	h, host, err := parseHeaders([]string{"Content-Encoding: gzip", "Host: example", "X-A:b:c"})
	if err != nil || h.Get("Content-Encoding") != "gzip" || host != "example" || h.Get("X-A") != "b:c" {
		t.Fatalf("%v %q %v", h, host, err)
	}
	if _, _, err := parseHeaders([]string{"no colon"}); err == nil {
		t.Fatal("no error for a header without a colon")
	}
}

// A real run against a local server: every body arrives unchanged with the given headers, the
// connections stay alive, and non-2xx answers are counted as errors by status.
func TestRunAgainstServer(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Accept-Encoding") != "" ||
			r.ProtoMajor != 1 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen[string(b)]++
		mu.Unlock()
		if string(b) == "bad" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, strings.Repeat("x", 100))
	}))
	defer srv.Close()
	bodies, _ := readBodies(frame("a", "b", "c", "bad"))
	res := run(config{url: srv.URL, header: http.Header{"Content-Encoding": {"gzip"}}, conns: 2,
		dur: 300 * time.Millisecond, warmup: 50 * time.Millisecond, timeout: 5 * time.Second,
		bodies: bodies})
	if res.Requests < 8 || res.OK+res.Errors["status_503"] != res.Requests || res.OK == 0 ||
		res.Errors["status_503"] == 0 || len(res.Errors) != 1 {
		t.Fatalf("unexpected result %+v", res)
	}
	if res.Dials != 2 {
		t.Errorf("%d dials for 2 keep-alive connections", res.Dials)
	}
	if res.TotalRequests < res.Requests || res.TotalOK < res.OK {
		t.Errorf("totals below the measured window: %+v", res)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range []string{"a", "b", "c", "bad"} {
		if seen[k] == 0 {
			t.Errorf("body %q never sent (%v)", k, seen)
		}
	}
}
