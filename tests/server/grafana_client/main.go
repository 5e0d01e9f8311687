// A Connect client of spanprof's querier.v1, built as Grafana's Pyroscope data source builds its
// own: connect-go's client generated from the QuerierService (server/proto), Connect protocol,
// binary proto. tests/server/test_grafana_client.py runs it against a real server.
//
// Usage: spanprof-grafana-client <base URL> <method> <request as protojson>
// Prints the response as protojson and exits 0, or {"code": ..., "message": ...} (the Connect
// error as connect-go reads it) and exits 3.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	querierv1 "spanprof/grafana_client/gen/querierv1"
	"spanprof/grafana_client/gen/querierv1/querierv1connect"
	typesv1 "spanprof/grafana_client/gen/typesv1"
)

type unary[Req, Res any] func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error)

// call decodes the request from protojson into a fresh Req and sends it with f.
func call[Req, Res any](ctx context.Context, js string, f unary[Req, Res]) (proto.Message, error) {
	req := new(Req)
	if err := protojson.Unmarshal([]byte(js), any(req).(proto.Message)); err != nil {
		return nil, fmt.Errorf("request is not %T in protojson: %w", req, err)
	}
	res, err := f(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return any(res.Msg).(proto.Message), nil
}

func run(base, method, js string) (proto.Message, error) {
	c := querierv1connect.NewQuerierServiceClient(&http.Client{Timeout: 30 * time.Second}, base)
	ctx := context.Background()
	switch method {
	case "ProfileTypes":
		return call(ctx, js, unary[querierv1.ProfileTypesRequest, querierv1.ProfileTypesResponse](c.ProfileTypes))
	case "LabelNames":
		return call(ctx, js, unary[typesv1.LabelNamesRequest, typesv1.LabelNamesResponse](c.LabelNames))
	case "LabelValues":
		return call(ctx, js, unary[typesv1.LabelValuesRequest, typesv1.LabelValuesResponse](c.LabelValues))
	case "Series":
		return call(ctx, js, unary[querierv1.SeriesRequest, querierv1.SeriesResponse](c.Series))
	case "SelectMergeStacktraces":
		return call(ctx, js, c.SelectMergeStacktraces)
	case "SelectMergeSpanProfile":
		return call(ctx, js, c.SelectMergeSpanProfile)
	case "SelectMergeProfile":
		return call(ctx, js, c.SelectMergeProfile)
	case "SelectSeries":
		return call(ctx, js, c.SelectSeries)
	case "SelectHeatmap":
		return call(ctx, js, c.SelectHeatmap)
	case "AnalyzeQuery":
		return call(ctx, js, c.AnalyzeQuery)
	case "Diff":
		return call(ctx, js, c.Diff)
	case "GetProfileStats":
		return call(ctx, js, c.GetProfileStats)
	}
	return nil, fmt.Errorf("unknown method %q", method)
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: spanprof-grafana-client <base URL> <method> <request protojson>")
		os.Exit(2)
	}
	res, err := run(os.Args[1], os.Args[2], os.Args[3])
	if err != nil {
		var ce *connect.Error
		if !errors.As(err, &ce) {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		out, _ := json.Marshal(map[string]string{"code": ce.Code().String(), "message": ce.Message()})
		fmt.Println(string(out))
		os.Exit(3)
	}
	out, err := protojson.MarshalOptions{EmitUnpopulated: false}.Marshal(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(string(out))
}
