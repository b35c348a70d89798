namespace Ledger.Models;

/// <summary>A named account holding a balance in cents.</summary>
public class Account
{
    public Account(string name) => Name = name;

    public string Name { get; }
    public long BalanceCents { get; set; }
}
