// libFuzzer entry point: the kdump-compressed parser (Tools/fuzz/README.md). Seeds: corpus/kdump-compressed.
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Harness.container(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}
