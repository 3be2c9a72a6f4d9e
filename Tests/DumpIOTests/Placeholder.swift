import Testing
@Test func DumpIOTestsPlaceholder() { #expect(true) }
