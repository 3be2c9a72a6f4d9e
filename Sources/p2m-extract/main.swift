import P2MTools
ExtractCommand.main()
