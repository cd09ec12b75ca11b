package dnsprovider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// EnvRoute53ZoneID is the environment variable naming the hosted zone
// (Aralez's name).
const EnvRoute53ZoneID = "AWS_HOSTED_ZONE_ID"

// route53TTL is the TTL of challenge records, seconds.
const route53TTL = 60

// Route53API is the part of the Route53 client the provider uses.
type Route53API interface {
	ListResourceRecordSets(ctx context.Context, in *route53.ListResourceRecordSetsInput, optFns ...func(*route53.Options)) (*route53.ListResourceRecordSetsOutput, error)
	ChangeResourceRecordSets(ctx context.Context, in *route53.ChangeResourceRecordSetsInput, optFns ...func(*route53.Options)) (*route53.ChangeResourceRecordSetsOutput, error)
}

var _ Route53API = (*route53.Client)(nil)

// Route53 manages TXT records of one hosted zone in Amazon Route53. It is
// safe for concurrent use, but two processes changing one name at once
// may lose a value (Route53 replaces record sets whole).
type Route53 struct {
	// Client is the Route53 client. Required.
	Client Route53API
	// ZoneID is the hosted zone ID ("Z0123…"). Required.
	ZoneID string
}

// Route53FromEnv returns a Route53 provider for the zone in
// AWS_HOSTED_ZONE_ID, with the AWS SDK's default configuration
// (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_REGION, shared
// config files, instance roles).
func Route53FromEnv(ctx context.Context) (*Route53, error) {
	zone := os.Getenv(EnvRoute53ZoneID)
	if zone == "" {
		return nil, fmt.Errorf("dnsprovider: route53 needs %s in the environment", EnvRoute53ZoneID)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("dnsprovider: route53: loading the AWS configuration: %w", err)
	}
	return &Route53{Client: route53.NewFromConfig(cfg), ZoneID: zone}, nil
}

// SetTXT adds value to the TXT record set name, keeping its other values.
func (r *Route53) SetTXT(ctx context.Context, name, value string) error {
	cur, err := r.values(ctx, name)
	if err != nil {
		return err
	}
	q := strconv.Quote(value)
	if slices.Contains(cur, q) {
		return nil
	}
	return r.change(ctx, types.ChangeActionUpsert, name, append(cur, q))
}

// ClearTXT removes value from the TXT record set name, and the set when
// it was the last value.
func (r *Route53) ClearTXT(ctx context.Context, name, value string) error {
	cur, err := r.values(ctx, name)
	if err != nil {
		return err
	}
	q := strconv.Quote(value)
	if !slices.Contains(cur, q) {
		return nil
	}
	rest := slices.DeleteFunc(slices.Clone(cur), func(v string) bool { return v == q })
	if len(rest) == 0 {
		return r.change(ctx, types.ChangeActionDelete, name, cur)
	}
	return r.change(ctx, types.ChangeActionUpsert, name, rest)
}

// values returns the quoted values of the TXT record set name, nil when
// there is none.
func (r *Route53) values(ctx context.Context, name string) ([]string, error) {
	fq := fqdn(name)
	out, err := r.Client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
		HostedZoneId:    aws.String(r.ZoneID),
		StartRecordName: aws.String(fq),
		StartRecordType: types.RRTypeTxt,
		MaxItems:        aws.Int32(1),
	})
	if err != nil {
		return nil, fmt.Errorf("dnsprovider: route53: listing %s: %w", name, err)
	}
	for _, set := range out.ResourceRecordSets {
		if set.Type != types.RRTypeTxt || !strings.EqualFold(fqdn(aws.ToString(set.Name)), fq) {
			continue
		}
		var vals []string
		for _, rr := range set.ResourceRecords {
			vals = append(vals, aws.ToString(rr.Value))
		}
		return vals, nil
	}
	return nil, nil
}

// change sends one change of the TXT record set name with vals.
func (r *Route53) change(ctx context.Context, action types.ChangeAction, name string, vals []string) error {
	if len(vals) == 0 {
		return errors.New("dnsprovider: route53: empty record set")
	}
	rrs := make([]types.ResourceRecord, len(vals))
	for i, v := range vals {
		rrs[i] = types.ResourceRecord{Value: aws.String(v)}
	}
	_, err := r.Client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(r.ZoneID),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{{
			Action: action,
			ResourceRecordSet: &types.ResourceRecordSet{
				Name: aws.String(fqdn(name)), Type: types.RRTypeTxt, TTL: aws.Int64(route53TTL), ResourceRecords: rrs,
			},
		}}},
	})
	if err != nil {
		return fmt.Errorf("dnsprovider: route53: %s %s: %w", action, name, err)
	}
	return nil
}

func fqdn(n string) string {
	if strings.HasSuffix(n, ".") {
		return n
	}
	return n + "."
}
