package sink

// The tests of the spool in front of the Kafka sink are in package
// sink_test: they import lookout/spool, which imports sink. These are the
// helpers they share with the internal tests (one broker per test binary).
var (
	TestRecord      = testRecord
	TestRecords     = testRecords
	NeedBroker      = needBroker
	RestartBroker   = restartBroker
	StopBroker      = stopBroker
	KillBroker      = killBroker
	CreateTopic     = createTopic
	CreateTopicWait = createTopicWait
	ReadAll         = readAll
	ReadUntil       = readUntil
	HeaderID        = headerID
)
