package harness

import "flag"

// OnlyFuzzing reports whether this test binary runs just a fuzz target (go test -run '^$' -fuzz ..., as make fuzz
// does): a TestMain then starts no servers, because the fuzz targets need none and every fuzz worker process
// runs TestMain again. Call it from TestMain; it parses the test flags.
func OnlyFuzzing() bool {
	if !flag.Parsed() {
		flag.Parse()
	}
	fuzz, run := flag.Lookup("test.fuzz"), flag.Lookup("test.run")
	return fuzz != nil && fuzz.Value.String() != "" && run != nil && run.Value.String() == "^$"
}
