import P2MTools
AnalyzeCommand.main()
