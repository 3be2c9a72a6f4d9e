import Testing
@Test func DumpGenTestsPlaceholder() { #expect(true) }
