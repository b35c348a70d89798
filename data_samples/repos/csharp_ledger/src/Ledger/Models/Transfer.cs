namespace Ledger.Models
{
    /// <summary>Money moved from one account to another.</summary>
    public record Transfer(Account From, Account To, long AmountCents);
}
