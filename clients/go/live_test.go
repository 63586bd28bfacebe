package vmssdclient

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// liveExpectations is what the harness knows the fake Azure behind a real vmssd holds. It is
// read from VMSSD_EXPECTATIONS: JSON text, or "@path" naming a JSON file.
type liveExpectations struct {
	Exists           []string           `json:"exists"`
	Gone             []string           `json:"gone"`
	Shutdown         []string           `json:"shutdown"`
	Running          []string           `json:"running"`
	NotFoundMetadata []string           `json:"not_found_metadata"`
	Metadata         []expectedMetadata `json:"metadata"`
}

type expectedMetadata struct {
	NodeName      string        `json:"node_name"`
	ProviderID    string        `json:"provider_id"`
	InstanceType  string        `json:"instance_type"`
	Zone          string        `json:"zone"`
	Region        string        `json:"region"`
	NodeAddresses []NodeAddress `json:"node_addresses"`
}

func loadLiveExpectations(t *testing.T) (string, liveExpectations) {
	t.Helper()
	socket := os.Getenv("VMSSD_SOCKET")
	raw := os.Getenv("VMSSD_EXPECTATIONS")
	if socket == "" || raw == "" {
		t.Skip("VMSSD_SOCKET and VMSSD_EXPECTATIONS not set; the pytest harness sets them")
	}
	if strings.HasPrefix(raw, "@") {
		data, err := os.ReadFile(raw[1:])
		if err != nil {
			t.Fatalf("reading expectations: %v", err)
		}
		raw = string(data)
	}
	var want liveExpectations
	if err := json.Unmarshal([]byte(raw), &want); err != nil {
		t.Fatalf("parsing VMSSD_EXPECTATIONS: %v", err)
	}
	return socket, want
}

func TestAgainstARealVmssd(t *testing.T) {
	socket, want := loadLiveExpectations(t)
	client := newClient(t, socket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, id := range want.Exists {
		if got, err := client.InstanceExistsByProviderID(ctx, id); err != nil || !got {
			t.Errorf("exists(%s) = %v, %v; want true", id, got, err)
		}
	}
	for _, id := range want.Gone {
		if got, err := client.InstanceExistsByProviderID(ctx, id); err != nil || got {
			t.Errorf("exists(%s) = %v, %v; want false", id, got, err)
		}
	}
	for _, id := range want.Shutdown {
		if got, err := client.InstanceShutdownByProviderID(ctx, id); err != nil || !got {
			t.Errorf("shutdown(%s) = %v, %v; want true", id, got, err)
		}
	}
	for _, id := range want.Running {
		if got, err := client.InstanceShutdownByProviderID(ctx, id); err != nil || got {
			t.Errorf("shutdown(%s) = %v, %v; want false", id, got, err)
		}
	}
	for _, id := range want.NotFoundMetadata {
		if _, err := client.InstanceMetadata(ctx, &Node{ProviderID: id}); !errors.Is(err, ErrInstanceNotFound) {
			t.Errorf("metadata(%s) err = %v; want ErrInstanceNotFound", id, err)
		}
	}
	for _, m := range want.Metadata {
		got, err := client.InstanceMetadata(ctx, &Node{Name: m.NodeName, ProviderID: m.ProviderID})
		if err != nil {
			t.Errorf("metadata(%s/%s): %v", m.NodeName, m.ProviderID, err)
			continue
		}
		if m.ProviderID != "" && !strings.EqualFold(got.ProviderID, m.ProviderID) {
			t.Errorf("metadata(%s).ProviderID = %q", m.ProviderID, got.ProviderID)
		}
		if got.InstanceType != m.InstanceType || got.Zone != m.Zone || got.Region != m.Region {
			t.Errorf("metadata(%s) = %+v; want type %q zone %q region %q", m.ProviderID, *got, m.InstanceType, m.Zone, m.Region)
		}
		if m.NodeAddresses != nil && !sameAddresses(got.NodeAddresses, m.NodeAddresses) {
			t.Errorf("metadata(%s).NodeAddresses = %v; want %v", m.ProviderID, got.NodeAddresses, m.NodeAddresses)
		}
	}
	if len(want.Exists)+len(want.Gone) > 0 {
		ids := append(append([]string{}, want.Exists...), want.Gone...)
		verdicts, err := client.InstancesExist(ctx, ids)
		if err != nil || len(verdicts) != len(ids) {
			t.Fatalf("InstancesExist = %v, %v", verdicts, err)
		}
		for i, v := range verdicts {
			if v.Err != nil || v.Exists != (i < len(want.Exists)) {
				t.Errorf("batch verdict %d (%s) = %+v", i, ids[i], v)
			}
		}
	}
}

func sameAddresses(a, b []NodeAddress) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
