// libFuzzer entry point: the xl-dump-core parser (Tools/fuzz/README.md). Seeds: corpus/xl-dump-core.
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Harness.container(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}
