import Testing
@Test func P2MFormatTestsPlaceholder() { #expect(true) }
