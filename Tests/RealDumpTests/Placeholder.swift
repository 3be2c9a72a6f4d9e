import Testing
@Test func RealDumpTestsPlaceholder() { #expect(true) }
