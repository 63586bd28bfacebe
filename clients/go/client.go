// Package vmssdclient lets a Kubernetes cloud controller delegate its InstancesV2 questions
// (does this node's VM exist, is it shut down, what are its addresses and zone) to a vmssd
// sidecar on a Unix socket, so that every controller in the cluster shares one scale-set cache.
//
// The method shapes mirror k8s.io/cloud-provider's InstancesV2 interface without importing
// Kubernetes: a provider's InstancesV2 implementation can forward each call after copying the
// three Node fields it needs into a Node value.
package vmssdclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "vmssd/clients/go/instancesv1"
)

// ErrInstanceNotFound is returned (wrapped) when vmssd answers NOT_FOUND, in the way
// cloudprovider.InstanceNotFound is returned by an in-tree provider. Test with errors.Is.
var ErrInstanceNotFound = errors.New("instance not found")

// ErrUnavailable matches, through errors.Is, every *UnavailableError.
var ErrUnavailable = errors.New("vmssd unavailable")

// retryPushbackTrailer is the standard gRPC trailer a server sets to say when to try again.
const retryPushbackTrailer = "grpc-retry-pushback-ms"

// Node holds the fields of a Kubernetes Node object that vmssd needs.
type Node struct {
	// Name is the Node object's name (metadata.name).
	Name string
	// ProviderID is spec.providerID; empty for a node the cloud controller has not initialised.
	ProviderID string
	// CreationTimestamp is metadata.creationTimestamp; the zero time when unknown.
	CreationTimestamp time.Time
}

// NodeAddress is one address of a node, with its type spelled as Kubernetes spells it
// (Hostname, InternalIP, ExternalIP).
type NodeAddress struct {
	Type    string
	Address string
}

// InstanceMetadata is what InstancesV2.InstanceMetadata returns, minus the Kubernetes types.
type InstanceMetadata struct {
	ProviderID    string
	InstanceType  string
	NodeAddresses []NodeAddress
	Zone          string
	Region        string
}

// Verdict is the existence answer for one provider ID of an InstancesExist batch. Err is nil
// when Exists is a real answer; otherwise it says why this one ID could not be answered.
type Verdict struct {
	ProviderID string
	Exists     bool
	Err        error
}

// UnavailableError reports that vmssd answered UNAVAILABLE: it is shutting down or Azure is
// refusing or throttling it. When the server said when to try again, HasPushback is true and
// RetryAfter holds that delay.
type UnavailableError struct {
	Message     string
	RetryAfter  time.Duration
	HasPushback bool
}

// Error describes the failure and, when known, the delay the server asked for.
func (e *UnavailableError) Error() string {
	if e.HasPushback {
		return fmt.Sprintf("vmssd unavailable (retry after %v): %s", e.RetryAfter, e.Message)
	}
	return "vmssd unavailable: " + e.Message
}

// Is makes errors.Is(err, ErrUnavailable) true for every UnavailableError.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// GRPCStatus lets status.FromError and status.Code see the original UNAVAILABLE status.
func (e *UnavailableError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.Message)
}

// notFoundError keeps the server's message while matching ErrInstanceNotFound.
type notFoundError struct{ message string }

func (e *notFoundError) Error() string { return "instance not found: " + e.message }
func (e *notFoundError) Unwrap() error { return ErrInstanceNotFound }
func (e *notFoundError) GRPCStatus() *status.Status {
	return status.New(codes.NotFound, e.message)
}

type options struct {
	callTimeout time.Duration
	dialTimeout time.Duration
	authority   string
	dialOptions []grpc.DialOption
}

// Option adjusts how New connects and how calls are made.
type Option func(*options)

// WithCallTimeout bounds every call whose context has no deadline of its own (default 10 s;
// zero means no bound).
func WithCallTimeout(d time.Duration) Option { return func(o *options) { o.callTimeout = d } }

// WithDialTimeout makes New wait up to d for the socket to accept, failing otherwise. By
// default New returns at once and the connection is made on the first call.
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// WithAuthority sets the :authority header sent on each call (grpc-go's default over a Unix
// socket is "localhost").
func WithAuthority(a string) Option { return func(o *options) { o.authority = a } }

// WithDialOptions passes extra grpc.DialOptions, for instance interceptors.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// Client answers InstancesV2 questions by asking vmssd. It is safe for concurrent use and
// multiplexes every call over one connection.
type Client struct {
	conn        *grpc.ClientConn
	instances   pb.InstancesClient
	callTimeout time.Duration
}

// New connects to vmssd on the Unix socket at socketPath.
func New(socketPath string, opts ...Option) (*Client, error) {
	if socketPath == "" {
		return nil, errors.New("vmssdclient: empty socket path")
	}
	o := options{callTimeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socketPath)
	}
	dialOptions := []grpc.DialOption{grpc.WithInsecure(), grpc.WithContextDialer(dialer)}
	if o.authority != "" {
		dialOptions = append(dialOptions, grpc.WithAuthority(o.authority))
	}
	ctx := context.Background()
	if o.dialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.dialTimeout)
		defer cancel()
		dialOptions = append(dialOptions, grpc.WithBlock())
	}
	dialOptions = append(dialOptions, o.dialOptions...)
	conn, err := grpc.DialContext(ctx, "unix://"+socketPath, dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("vmssdclient: connecting to %s: %w", socketPath, err)
	}
	return &Client{conn: conn, instances: pb.NewInstancesClient(conn), callTimeout: o.callTimeout}, nil
}

// Close releases the connection; calls made afterwards fail.
func (c *Client) Close() error { return c.conn.Close() }

// Conn exposes the underlying connection, for the Admin service or health checks.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// InstanceExists reports whether the node's VM still exists. false comes only from vmssd's
// positive evidence of deletion; every doubt arrives as an error.
func (c *Client) InstanceExists(ctx context.Context, node *Node) (bool, error) {
	req, err := nodeRequest(node)
	if err != nil {
		return false, err
	}
	var resp *pb.ExistsResponse
	err = c.call(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		resp, err = c.instances.InstanceExists(ctx, req, opts...)
		return err
	})
	if err != nil {
		return false, err
	}
	return resp.GetExists(), nil
}

// InstanceShutdown reports whether the node's VM is stopped or deallocated.
func (c *Client) InstanceShutdown(ctx context.Context, node *Node) (bool, error) {
	req, err := nodeRequest(node)
	if err != nil {
		return false, err
	}
	var resp *pb.ShutdownResponse
	err = c.call(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		resp, err = c.instances.InstanceShutdown(ctx, req, opts...)
		return err
	})
	if err != nil {
		return false, err
	}
	return resp.GetShutdown(), nil
}

// InstanceMetadata returns the node's provider ID, instance type, addresses, zone and region.
func (c *Client) InstanceMetadata(ctx context.Context, node *Node) (*InstanceMetadata, error) {
	req, err := nodeRequest(node)
	if err != nil {
		return nil, err
	}
	var resp *pb.InstanceMetadataResponse
	err = c.call(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		resp, err = c.instances.InstanceMetadata(ctx, req, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	meta := &InstanceMetadata{
		ProviderID:   resp.GetProviderId(),
		InstanceType: resp.GetInstanceType(),
		Zone:         resp.GetZone(),
		Region:       resp.GetRegion(),
	}
	for _, a := range resp.GetNodeAddresses() {
		meta.NodeAddresses = append(meta.NodeAddresses, NodeAddress{Type: a.GetType(), Address: a.GetAddress()})
	}
	return meta, nil
}

// InstanceExistsByProviderID reports whether the VM named by providerID still exists.
func (c *Client) InstanceExistsByProviderID(ctx context.Context, providerID string) (bool, error) {
	var resp *pb.ExistsResponse
	req := &pb.ProviderIDRequest{ProviderId: providerID}
	err := c.call(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		resp, err = c.instances.InstanceExistsByProviderID(ctx, req, opts...)
		return err
	})
	if err != nil {
		return false, err
	}
	return resp.GetExists(), nil
}

// InstanceShutdownByProviderID reports whether the VM named by providerID is shut down.
func (c *Client) InstanceShutdownByProviderID(ctx context.Context, providerID string) (bool, error) {
	var resp *pb.ShutdownResponse
	req := &pb.ProviderIDRequest{ProviderId: providerID}
	err := c.call(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		resp, err = c.instances.InstanceShutdownByProviderID(ctx, req, opts...)
		return err
	})
	if err != nil {
		return false, err
	}
	return resp.GetShutdown(), nil
}

// InstancesExist asks about many provider IDs in one call and returns one Verdict per ID in
// the order vmssd answered them. A failure for one ID sits in its Verdict; the returned error
// is for the call as a whole.
func (c *Client) InstancesExist(ctx context.Context, providerIDs []string) ([]Verdict, error) {
	var resp *pb.InstancesExistResponse
	req := &pb.InstancesExistRequest{ProviderIds: providerIDs}
	err := c.call(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		resp, err = c.instances.InstancesExist(ctx, req, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	verdicts := make([]Verdict, 0, len(resp.GetVerdicts()))
	for _, v := range resp.GetVerdicts() {
		verdict := Verdict{ProviderID: v.GetProviderId(), Exists: v.GetExists()}
		if code := codes.Code(v.GetCode()); code != codes.OK {
			verdict.Exists = false
			verdict.Err = translate(status.New(code, v.GetMessage()), nil)
		}
		verdicts = append(verdicts, verdict)
	}
	return verdicts, nil
}

// call applies the default timeout, collects the trailers and turns the status into this
// package's errors.
func (c *Client) call(ctx context.Context, rpc func(context.Context, ...grpc.CallOption) error) error {
	if _, has := ctx.Deadline(); !has && c.callTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.callTimeout)
		defer cancel()
	}
	var trailer metadata.MD
	err := rpc(ctx, grpc.Trailer(&trailer))
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	// grpc-go reports a deadline that passes while it is still connecting as UNKNOWN; callers
	// should see the same code whichever stage of the call the deadline caught.
	if st.Code() == codes.Unknown {
		switch ctx.Err() {
		case context.DeadlineExceeded:
			return status.Error(codes.DeadlineExceeded, st.Message())
		case context.Canceled:
			return status.Error(codes.Canceled, st.Message())
		}
	}
	return translate(st, trailer)
}

// translate maps the two statuses a controller must treat specially; others pass unchanged.
func translate(st *status.Status, trailer metadata.MD) error {
	switch st.Code() {
	case codes.NotFound:
		return &notFoundError{message: st.Message()}
	case codes.Unavailable:
		e := &UnavailableError{Message: st.Message()}
		if values := trailer.Get(retryPushbackTrailer); len(values) == 1 {
			if ms, err := strconv.ParseInt(values[0], 10, 64); err == nil && ms >= 0 {
				e.RetryAfter = time.Duration(ms) * time.Millisecond
				e.HasPushback = true
			}
		}
		return e
	default:
		return st.Err()
	}
}

func nodeRequest(node *Node) (*pb.NodeRequest, error) {
	if node == nil {
		return nil, errors.New("vmssdclient: nil node")
	}
	req := &pb.NodeRequest{NodeName: node.Name, ProviderId: node.ProviderID}
	if !node.CreationTimestamp.IsZero() {
		req.CreationUnixSeconds = node.CreationTimestamp.Unix()
	}
	return req, nil
}
