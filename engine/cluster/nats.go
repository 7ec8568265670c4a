package cluster

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"cotd/engine/directory"
)

// clusterName is the NATS cluster name every cotd node uses.
const clusterName = "cotd"

// embed starts the in-process NATS server: no client port (this node
// connects in-process), a route port on cluster.listen, routes to the
// other nodes, TLS and authentication on routes when configured.
func (n *Node) embed() (*server.Server, error) {
	c := n.o.Config
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: cluster.listen: %w", ErrConfig, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("%w: cluster.listen port %q", ErrConfig, portStr)
	}
	if port == 0 {
		port = server.RANDOM_PORT // the kernel's choice (tests)
	}
	// The client port is on loopback and takes only this process's random
	// token: this node connects in-process, nobody else connects at all.
	// (nats-server starts its routes only once a client port is open.)
	n.token = rand.Text()
	opts := &server.Options{
		ServerName:    n.name,
		Host:          "127.0.0.1",
		Port:          server.RANDOM_PORT,
		Authorization: n.token,
		NoSigs:        true,
		NoLog:         os.Getenv("COTD_NATS_LOG") == "",
		Debug:         os.Getenv("COTD_NATS_LOG") != "",
		Cluster: server.ClusterOpts{
			Name: clusterName, Host: host, Port: port,
			Username: c.User, Password: c.Password,
			Advertise: c.Advertise,
		},
	}
	if c.Cert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.Cert, KeyFile: c.Key, CaFile: c.CA, Verify: true})
		if err != nil {
			return nil, fmt.Errorf("%w: route TLS: %w", ErrConfig, err)
		}
		// A route is dialled as well as accepted: the CA verifies both ends
		// (nats-server's config file loader does the same).
		tc.RootCAs = tc.ClientCAs
		opts.Cluster.TLSConfig = tc
		opts.Cluster.TLSTimeout = 5
	}
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("%w: cluster.routes %q: %w", ErrConfig, r, err)
		}
		if u.User == nil && c.User != "" {
			u.User = url.UserPassword(c.User, c.Password)
		}
		opts.Routes = append(opts.Routes, u)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: embedded NATS: %w", ErrStart, err)
	}
	if !opts.NoLog {
		ns.ConfigureLogger() // COTD_NATS_LOG: the embedded server's own log on stderr, for debugging
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("%w: embedded NATS not ready within 10s", ErrStart)
	}
	return ns, nil
}

// connect opens this node's NATS connection: in-process to the embedded
// server, or to nats_url. Publishing never waits for a reconnect: while
// disconnected, publishes fail at once and are counted (local-only
// routing), and the link recovers by itself.
func (n *Node) connect() (*nats.Conn, error) {
	c := n.o.Config
	opts := []nats.Option{
		nats.Name("cotd-" + n.name),
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.connected.Store(false)
			n.stats.Disconnects.Inc()
			n.log.Warn().Err(err).Msg("NATS connection lost: routing is local-only until it is back")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			n.connected.Store(true)
			n.log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("NATS connection back")
			select {
			case n.reconnected <- struct{}{}:
			default:
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				n.stats.InboundDropped.Inc()
				return
			}
			n.log.Warn().Err(err).Msg("NATS error")
		}),
	}
	url := c.NATSURL
	if n.ns != nil {
		opts = append(opts, nats.InProcessServer(n.ns), nats.Token(n.token))
		url = ""
	} else {
		if c.User != "" {
			opts = append(opts, nats.UserInfo(c.User, c.Password))
		}
		if c.Token != "" {
			opts = append(opts, nats.Token(c.Token))
		}
		if c.Cert != "" {
			opts = append(opts, nats.ClientCert(c.Cert, c.Key))
		}
		if c.CA != "" {
			opts = append(opts, nats.RootCAs(c.CA))
		}
		opts = append(opts, nats.RetryOnFailedConnect(false))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: NATS connect: %w", ErrStart, err)
	}
	return nc, nil
}

// outItem is one message for other nodes, as a shard queued it.
type outItem struct {
	kind  frameKind
	dest  string // the group (frameGroup) or the node (frameDirect)
	toUID string
	m     directory.Outgoing
}

// ToGroup implements directory.Forwarder. Shard: queues or refuses.
func (n *Node) ToGroup(group string, m directory.Outgoing) bool {
	return n.enqueue(outItem{kind: frameGroup, dest: group, m: m})
}

// ToClient implements directory.Forwarder. Shard: queues or refuses.
func (n *Node) ToClient(node string, _ uint64, uid string, m directory.Outgoing) bool {
	return n.enqueue(outItem{kind: frameDirect, dest: node, toUID: uid, m: m})
}

func (n *Node) enqueue(it outItem) bool {
	select {
	case n.out <- it:
		return true
	default:
		n.stats.QueueFull.Inc()
		return false
	}
}

// publishLoop encodes and publishes what the shards queued. A message into
// several groups is queued once per group by one shard in a row; it is
// encoded once and the frame reused.
func (n *Node) publishLoop() {
	defer n.wg.Done()
	var (
		buf      []byte
		lastXML  *byte
		lastConn uint64
		subjects = make(map[string]string)
		failing  bool
	)
	for {
		var it outItem
		select {
		case <-n.quit:
			return
		case it = <-n.out:
		}
		if len(it.m.XML) == 0 {
			continue
		}
		var subj string
		if it.kind == frameGroup {
			if subj = subjects[it.dest]; subj == "" {
				if len(subjects) > 4096 {
					clear(subjects)
				}
				subj = subjGroup + token(it.dest)
				subjects[it.dest] = subj
			}
			if &it.m.XML[0] != lastXML || it.m.From.ConnID != lastConn {
				buf = appendFrame(buf[:0], &frame{kind: frameGroup, from: n.origin(it.m.From), xml: it.m.XML})
				lastXML, lastConn = &it.m.XML[0], it.m.From.ConnID
			}
		} else {
			subj = subjNode + it.dest
			buf = appendFrame(buf[:0], &frame{kind: frameDirect, from: n.origin(it.m.From), toUID: it.toUID, xml: it.m.XML})
			lastXML = nil
		}
		if err := n.nc.Publish(subj, buf); err != nil {
			n.stats.PublishErrors.Inc()
			if !failing {
				failing = true
				n.log.Warn().Err(err).Str("subject", subj).Msg("cannot publish to the cluster: messages for other nodes are dropped (counted) until NATS takes them again")
			}
			continue
		}
		if failing {
			failing = false
			n.log.Info().Msg("publishing to the cluster again")
		}
		n.stats.Published[it.kind].Inc()
	}
}

// origin names a sender of this node for the others.
func (n *Node) origin(o directory.Origin) directory.Origin {
	o.Node = n.name
	return o
}
