// Package dnsprovider sets and removes the TXT records of ACME DNS-01
// challenges (RFC 8555 §8.4) at DNS hosts, for tls/acme: Cloudflare and
// Amazon Route53, with the credentials and zone IDs Aralez reads from
// the environment (CLOUDFLARE_API_TOKEN and CLOUDFLARE_ZONE_ID;
// AWS_HOSTED_ZONE_ID and the AWS SDK's usual credential chain).
//
// Both work on one configured zone: record names are fully qualified
// ("_acme-challenge.example.com") and must lie in it. Several values
// under one name (a wildcard and its apex validated together) are kept
// side by side.
package dnsprovider
