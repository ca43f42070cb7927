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
	{Name: "event deliveries/s, 100 websockets vs pre-encoded on 100 TCP conns",
		Floor: ref{"BenchmarkFanoutTCP", "deliveries/s"}, Ours: ref{"BenchmarkFanout100WS", "deliveries/s"}, HigherIsBetter: true, Goal: 0.5},
	{Name: "100 websockets' deliveries/s beside 1 stuck vs none stuck",
		Floor: ref{"BenchmarkFanoutStuck", "nostuck-deliveries/s"}, Ours: ref{"BenchmarkFanoutStuck", "stuck-deliveries/s"}, HigherIsBetter: true, Goal: 0.95},
	{Name: "REST-posted events delivered/s to 100 websockets vs post rate, 1",
		Floor: ref{"BenchmarkEventsPost", "solo-posts/s"}, Ours: ref{"BenchmarkEventsPost", "crowd-deliveries/s"}, HigherIsBetter: true, Goal: 20},
	{Name: "plugin action p50, 1 caller, vs plugin socket",
		Floor: ref{"BenchmarkPluginActions/direct/callers=1", "p50-µs"}, Ours: ref{"BenchmarkPluginActions/provisiond/callers=1", "p50-µs"}},
	// Issue #14: the floor is the socket call plus one HTTPS round trip
	// to an idle handler (/healthz) on the same server.
	{Name: "plugin action p50, 1 caller, vs socket call + HTTPS round trip",
		Floor: ref{"BenchmarkPluginActions/floor/callers=1", "p50-µs"}, Ours: ref{"BenchmarkPluginActions/provisiond/callers=1", "p50-µs"}, Goal: 1.5},
	{Name: "plugin actions/s, 64 callers, vs plugin socket",
		Floor: ref{"BenchmarkPluginActions/direct/callers=64", "ops/s"}, Ours: ref{"BenchmarkPluginActions/provisiond/callers=64", "ops/s"}, HigherIsBetter: true},
	// Issue #14: 50 Plugin objects created at once until all answer an
	// action, vs 50 parallel define runs of the same binary.
	{Name: "cold start of 50 plugins (sandboxed) vs 50 parallel defines",
		Floor: ref{"BenchmarkPluginColdStart/define", "ms/start"}, Ours: ref{"BenchmarkPluginColdStart/provisiond", "ms/start"}, Goal: 1.5},
	{Name: "cold start of 50 plugins (no sandbox) vs 50 parallel defines",
		Floor: ref{"BenchmarkPluginColdStart/define", "ms/start"}, Ours: ref{"BenchmarkPluginColdStart/provisiond-nosandbox", "ms/start"}},
	// Issue #10: the object layer against floors in the same run.
	{Name: "32 concurrent object creates vs bbolt Batch (ns per write)",
		Floor: ref{"BenchmarkObjectsWrite32BoltBatchFloor", "ns/op"}, Ours: ref{"BenchmarkObjectsWrite32", "ns/op"}},
	{Name: "store Txn, 32 writers, vs bbolt Batch (ns per write)",
		Floor: ref{"BenchmarkStoreWrite32BoltBatch", "ns/op"}, Ours: ref{"BenchmarkStoreWrite32Txn", "ns/op"}},
	{Name: "object read while 8 writers fsync vs idle read",
		Floor: ref{"BenchmarkObjectsReadIdle", "ns/op"}, Ours: ref{"BenchmarkObjectsReadWhileWriting", "ns/op"}},
	{Name: "list Name=Eq at 10k machines vs get by Name",
		Floor: ref{"BenchmarkObjectsGetByName10k", "ns/op"}, Ours: ref{"BenchmarkObjectsListNameEq10k", "ns/op"}},
	{Name: "list limit=10 at 10k machines vs get by Name",
		Floor: ref{"BenchmarkObjectsGetByName10k", "ns/op"}, Ours: ref{"BenchmarkObjectsListLimit10_10k", "ns/op"}},
	{Name: "slim list (Params,Meta) of 10k vs plain list",
		Floor: ref{"BenchmarkObjectsList10k", "ns/op"}, Ours: ref{"BenchmarkObjectsListSlim10k", "ns/op"}},
	{Name: "ipmi powerstatus sweep of 100 BMCs, native vs ipmitool",
		Floor: ref{"BenchmarkPowerStatus100BMCs", "ipmitool-ms/sweep"}, Ours: ref{"BenchmarkPowerStatus100BMCs", "native-ms/sweep"}},
}
