import Testing
@Test func P2MToolsTestsPlaceholder() { #expect(true) }
