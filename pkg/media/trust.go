package media

import "strings"

// Untrusted media must never make ffmpeg open another file or URL
// (DESIGN.md invariant 7). A file named .mp4 can be anything: an HLS
// playlist, for one, makes ffmpeg's probing pick the hls demuxer, which
// reads every path or URL the playlist lists (any file on the host,
// internal HTTP endpoints). So every ffmpeg and ffprobe here that reads
// media puts trustArgs in front of its -i:
//   - "-f mov" forces the MP4/QuickTime demuxer: nothing is probed, and a
//     playlist (or any other format) fails to parse as MP4. The mov
//     demuxer's external data references (dref) stay off (its default,
//     enable_drefs=0, set explicitly so that a future default cannot
//     change it);
//   - "-protocol_whitelist" lets the input be opened only by the protocol
//     its own URL needs: file for a path, http+tcp for an http URL (the
//     processor's loopback proxy), https+tls+tcp for an https URL.

// movDemuxer is the name ffmpeg knows the ISO BMFF / QuickTime demuxer by.
const movDemuxer = "mov"

// trustArgs are the input options for untrusted MP4/MOV media at input
// (a path or an http(s) URL). They go right before its "-i".
func trustArgs(input string) []string {
	return []string{"-protocol_whitelist", protocols(input), "-f", movDemuxer, "-enable_drefs", "0"}
}

// protocols is the protocol whitelist for input.
func protocols(input string) string {
	switch {
	case strings.HasPrefix(input, "https://"):
		return "https,tls,tcp"
	case strings.HasPrefix(input, "http://"):
		return "http,tcp"
	default:
		return "file"
	}
}

// isURL reports whether input is an http(s) URL rather than a path.
func isURL(input string) bool {
	return strings.HasPrefix(input, "http://") || strings.HasPrefix(input, "https://")
}
