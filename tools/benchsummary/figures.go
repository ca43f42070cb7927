package main

// figures are the rows of `./build.sh bench`'s summary, each a benchmark
// against a floor from the same run (README.rst, "Benchmarks", explains
// each). Add a row here with every new benchmark pair.
var figures = []figure{
	{Name: "REST GET of a machine over HTTPS vs in-process",
		Floor: ref{"BenchmarkInProcessGet", "ns/op"}, Ours: ref{"BenchmarkHTTPSGet", "ns/op"}},
	{Name: "REST list of 100 over HTTPS vs in-process",
		Floor: ref{"BenchmarkInProcessList100", "ns/op"}, Ours: ref{"BenchmarkHTTPSList100", "ns/op"}},
	{Name: "durable PATCH over HTTPS vs in-process",
		Floor: ref{"BenchmarkInProcessPatch", "ns/op"}, Ours: ref{"BenchmarkHTTPSPatch", "ns/op"}},
	{Name: "event deliveries/s, 100 websockets + 1 stuck, vs bus channels",
		Floor: ref{"BenchmarkFanoutChannels", "deliveries/s"}, Ours: ref{"BenchmarkFanout100WS", "deliveries/s"}, HigherIsBetter: true},
	{Name: "plugin action p50, 1 caller, vs plugin socket",
		Floor: ref{"BenchmarkPluginActions/direct/callers=1", "p50-µs"}, Ours: ref{"BenchmarkPluginActions/provisiond/callers=1", "p50-µs"}},
	{Name: "plugin actions/s, 64 callers, vs plugin socket",
		Floor: ref{"BenchmarkPluginActions/direct/callers=64", "ops/s"}, Ours: ref{"BenchmarkPluginActions/provisiond/callers=64", "ops/s"}, HigherIsBetter: true},
	{Name: "ipmi powerstatus sweep of 100 BMCs, native vs ipmitool",
		Floor: ref{"BenchmarkPowerStatus100BMCs", "ipmitool-ms/sweep"}, Ours: ref{"BenchmarkPowerStatus100BMCs", "native-ms/sweep"}},
}
