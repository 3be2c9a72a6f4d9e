import P2MTools
EmitCommand.main()
