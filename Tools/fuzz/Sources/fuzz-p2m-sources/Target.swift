// libFuzzer entry point: the p2m-sources parser (Tools/fuzz/README.md). Seeds: corpus/p2m-sources.
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Harness.p2mSources(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}
