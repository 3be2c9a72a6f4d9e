// libFuzzer entry point: the inject-plan parser (Tools/fuzz/README.md). Seeds: corpus/inject-plan.
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Harness.injectPlan(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}
