import P2MTools
InjectCommand.main()
