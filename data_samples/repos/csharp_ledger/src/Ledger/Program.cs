using System;
using Ledger.Models;
using Ledger.Services;

namespace Ledger;

public static class Program
{
    public static void Main()
    {
        var alice = new Account("alice") { BalanceCents = 10_000 };
        var bob = new Account("bob");
        var log = new AuditLog();
        var transfer = new Transfer(alice, bob, 2_500);
        new TransferService().Apply(transfer);
        log.Record(transfer);
        Console.WriteLine($"{bob.Name} now has {bob.BalanceCents} cents; {log.Count} transfer logged");
    }
}
