// libFuzzer entry point: the note parser (Tools/fuzz/README.md). Seeds: corpus/note.
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Harness.note(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}
