import Testing
@Test func TranslationTestsPlaceholder() { #expect(true) }
