// Package tls terminates TLS for the edge proxy: a certificate store
// loaded from a folder, with SNI selection and hot reload, the server
// [crypto/tls.Config] for each security grade, and client configs for
// upstream TLS. Import it as edgetls:
//
//	import edgetls "github.com/aralez-go/aralez/tls"
//
// # Folder layout
//
// The store reads one folder, by default <proxy_configs>/certificates. It
// holds pairs of PEM files that share a base name:
//
//	certificates/
//	    example.com.crt      leaf certificate, then its chain (intermediates)
//	    example.com.key      private key (PKCS #1, PKCS #8 or SEC 1)
//	    wildcard.crt
//	    wildcard.key
//
// The base name (NAME) is only an identifier; the host names a pair
// serves come from its certificate: the DNS subject alternative names, or
// the subject common name when there are none. Names are matched without
// regard to case. IP SANs are ignored (SNI never carries an address).
// Files whose names start with a dot are ignored, and each file may be at
// most 1 MiB.
//
// # Other sources
//
// Besides the folder, other components hand the store certificates with
// [Store.SetCertificates], each under its own source name: the ACME
// client ("acme", package tls/acme) and the Kubernetes Secret watcher.
// The store stays the one place that serves certificates; a source's
// certificates are named by their leaf like folder pairs.
//
// # Certificate selection (SNI)
//
// For each handshake [Store.GetCertificate] tries, in order:
//
//  1. the certificates covering the SNI host: those naming it exactly,
//     and wildcards "*.example.com" when the SNI host is exactly one
//     label followed by ".example.com" ("a.example.com" matches,
//     "a.b.example.com" and "example.com" do not);
//  2. the default certificate: the first pair by file name in byte order
//     ("00-default.crt" sorts before "example.com.crt"), or, with no pair,
//     the first certificate of the first source by name. It also answers
//     clients that send no SNI (IP-address URLs, very old clients).
//
// When several certificates cover the name, from the folder or any
// source, the one with the latest NotAfter is served, so a renewed
// certificate always beats a stale copy (an exported file, an old
// Secret); on equal NotAfter a certificate naming the host comes before a
// wildcard, then folder pairs by file name, then sources by name. When
// they have different key algorithms (an ECDSA and an RSA certificate
// side by side) the first one the client supports is served. With no
// certificate loaded every handshake is refused with [ErrNoCertificate].
//
// # ACME TLS-ALPN-01
//
// A handshake whose only ALPN protocol is "acme-tls/1" (RFC 8737) is a
// CA validating a TLS-ALPN-01 challenge: configs from [Store.ServerConfig]
// hand it to the [ChallengeResponder] set with
// [Store.SetChallengeResponder], which presents the validation
// certificate, also while the store holds no certificate at all. Other
// handshakes never see that certificate.
//
// # Grades
//
// [Grade] selects protocol versions and, for TLS 1.2 and older, cipher
// suites. TLS 1.3 is always on with its three suites (TLS_AES_128_GCM_SHA256,
// TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256), which crypto/tls
// does not let us configure and which are all ECDHE + AEAD. The lists are
// set explicitly, so GODEBUG settings do not change a grade.
//
//	high      TLS 1.2 and 1.3. TLS 1.2 suites, ECDHE + AEAD only:
//	            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
//	            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
//	            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
//	            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
//	            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
//	            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
//
//	medium    TLS 1.2 and 1.3 (the default). Go's default suite list:
//	            the six of high, plus
//	            TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
//	            TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
//	            TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
//	            TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
//
//	unsafe    TLS 1.0, 1.1, 1.2 and 1.3, for legacy clients:
//	            the ten of medium, plus
//	            TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
//	            TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
//	            TLS_RSA_WITH_AES_128_GCM_SHA256
//	            TLS_RSA_WITH_AES_256_GCM_SHA384
//	            TLS_RSA_WITH_AES_128_CBC_SHA
//	            TLS_RSA_WITH_AES_256_CBC_SHA
//	            TLS_RSA_WITH_AES_128_CBC_SHA256
//	            TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA
//	            TLS_RSA_WITH_3DES_EDE_CBC_SHA
//
// So a client limited to TLS 1.0/1.1, or offering only RSA key exchange,
// CBC-SHA256 or 3DES suites, is refused by high and medium; a client
// offering only ECDHE AES-CBC-SHA suites is refused by high alone. crypto/tls
// picks the suite (server preference is not configurable since Go 1.17):
// AES-GCM first on hardware with AES instructions, else ChaCha20-Poly1305.
//
// RC4 is never offered. The RSA key-exchange suites (RSA_WITH_*) need an
// RSA certificate; serve one beside an ECDSA certificate for legacy
// clients. Under unsafe, a client may negotiate h2 over a CBC suite, which
// RFC 9113 §9.2.2 lists as prohibited; the HTTP/2 server may then refuse
// the connection.
//
// # Reload
//
// [Store.Reload] re-reads the folder and swaps the new set in with one
// atomic store: new handshakes use it at once, established connections
// keep the certificate they negotiated. [Store.Watch] calls it after
// file-system events on the folder, debounced (200 ms by default), so
// added, changed and removed pairs take effect well within a second.
//
// A pair that fails to load (unparsable PEM, a key that does not match the
// certificate, a .crt whose .key is not written yet, or the reverse) is
// skipped and logged at error level; if the pair loaded before, its
// previous certificate keeps serving. It is retried on the next event, so
// writing the missing file completes it. Removing both files of a pair
// drops it. Unchanged pairs are not parsed again.
//
// An empty or missing folder is not an error, at start or later: the store
// logs a loud warning and refuses handshakes until a pair appears, which
// lets ACME or a Kubernetes Secret fill the folder after the listener is
// up. Watch also follows the folder being created, deleted or replaced
// (it watches the parent folder, and polls while neither exists), and a
// Kubernetes Secret volume's atomic ..data swap.
//
// # Upstream TLS
//
// [ClientConfig] builds the client side: verification is off by default
// (self-signed upstreams work, as in Aralez) and, when on, uses the system
// roots plus an optional CA file; SNI is sent when the backend host is a
// name.
package tls
