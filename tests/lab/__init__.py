"""The lab: real AWS (moto) and WinRM protocols on loopback, with a model of Windows Server behind them."""
