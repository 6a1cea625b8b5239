package media_test

import (
	"fmt"
	"strings"

	"github.com/hevc-encoder/hevc-encoder/pkg/media"
)

// An iPhone-style HLG clip with LPCM audio and a timecode track.
func ExampleNewPlan() {
	info := media.Info{Path: "in.mp4", Duration: 12, Tags: map[string]string{"location": "+48.8584+002.2945/"}, Streams: []media.Stream{
		{Index: 0, Kind: "video", Codec: "h264", PixFmt: "yuv420p10le", ColorPrimaries: "bt2020", ColorTransfer: "arib-std-b67", ColorSpace: "bt2020nc"},
		{Index: 1, Kind: "audio", Codec: "pcm_s16le"},
		{Index: 2, Kind: "data", CodecTag: "tmcd"},
	}}
	p, err := media.NewPlan(info, media.DefaultSettings())
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.Join(media.Command("in.mp4", "out.mp4", p), " "))
	fmt.Println(p.TenBit, p.CopiedAudio, p.TranscodedAudio, p.Dropped)
	// Output:
	// -hide_banner -nostdin -nostats -v error -progress pipe:1 -y -noautorotate -protocol_whitelist file -f mov -enable_drefs 0 -i file:in.mp4 -b:a:0 192k -c:a:0 aac -c:v libx265 -color_primaries bt2020 -color_trc arib-std-b67 -colorspace bt2020nc -crf 26 -f mp4 -fps_mode passthrough -map 0:V:0 -map 0:a? -map_metadata 0 -metadata major_brand= -metadata minor_version= -metadata compatible_brands= -metadata com.apple.quicktime.location.ISO6709=+48.8584+002.2945/ -movflags +faststart+use_metadata_tags -pix_fmt yuv420p10le -preset fast -profile:v main10 -tag:v hvc1 -x265-params log-level=error:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc:ref=4:subme=3:max-merge=3 file:out.mp4
	// true 0 1 [stream 2: data tmcd]
}
