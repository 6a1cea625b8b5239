package adapters

import (
	"context"
	"strings"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
)

func parse(env map[string]string, bind func(*config.Set)) error {
	s := config.New("t", "t")
	s.SetGetenv(func(k string) string { return env[k] })
	bind(s)
	return s.Parse(nil)
}

func TestMisconfigurationNamesTheVariable(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "S3_BUCKET"},
		{map[string]string{"STORAGE": "gcs"}, "STORAGE"},
		{map[string]string{"STORAGE": "fs"}, "FS_ROOT"},
		{map[string]string{"S3_BUCKET": "b", "S3_PART_SIZE": "1MiB"}, "S3_PART_SIZE"},
		{map[string]string{"S3_BUCKET": "b", "QUEUE": "local"}, "QUEUE"},
		{map[string]string{"S3_BUCKET": "b"}, "WORK_QUEUE_URL"},
	}
	for _, c := range cases {
		var st Store
		var q Queues
		err := parse(c.env, func(s *config.Set) { st.Bind(s); q.Bind(s, "required", "optional") })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %s", c.env, err, c.want)
		}
	}
}

func TestOpenFS(t *testing.T) {
	var st Store
	if err := parse(map[string]string{"STORAGE": "fs", "FS_ROOT": t.TempDir()}, st.Bind); err != nil {
		t.Fatal(err)
	}
	s, err := st.Open(context.Background())
	if err != nil || s.Bucket() != "local" {
		t.Fatalf("%v %v", s, err)
	}
}
