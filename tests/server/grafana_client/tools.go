//go:build tools

// The code generators scripts/setup installs, pinned by this module's go.mod and go.sum.
package main

import (
	_ "connectrpc.com/connect/cmd/protoc-gen-connect-go"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
