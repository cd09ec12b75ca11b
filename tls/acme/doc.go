// Package acme obtains and renews TLS certificates with ACME (RFC 8555)
// for the edge proxy, using the certmagic library, and hands them to the
// proxy's certificate store (package tls, imported as edgetls), which
// stays the one place that serves certificates.
//
// # Challenges
//
// HTTP-01 (RFC 8555 §8.3) is answered by the proxy's cleartext listener:
// the request pipeline asks [Manager.HTTPChallenge] about every request
// for /.well-known/acme-challenge/TOKEN, before routing and policies, and
// a token the Manager does not hold goes on to normal routing.
// TLS-ALPN-01 (RFC 8737) is answered by the TLS listener: the Manager is
// the store's challenge responder, so validation handshakes succeed even
// while the store holds no certificate. DNS-01 (RFC 8555 §8.4) goes
// through a DNS provider (package tls/acme/dnsprovider); wildcard names
// need it.
//
// certmagic starts its own challenge listener unless the challenge port
// is taken; Options.HTTPAddr and Options.TLSAddr name the proxy's
// listeners, which are bound before the Manager orders anything, so it
// never does.
//
// # Storage and fleets
//
// Account key, certificates, pending challenges and locks live in a
// certmagic.Storage: a folder by default, or Consul's KV store
// ([NewConsulStorage]) for a fleet of proxies behind one address. With a
// shared storage the instances take a lock per name, so one of them
// orders each certificate and all serve it, and any instance answers a
// challenge another one started.
//
// # Renewal
//
// certmagic checks certificates every RenewCheckInterval and renews them
// inside the renewal window (the last third of their lifetime by
// default), in the background, with back-off after failures. A failed
// renewal keeps the previous certificate serving; it shows in
// [Manager.Status] and in the log, and Options.OnResult reports every
// outcome for metrics.
package acme
