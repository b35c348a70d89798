package com.shop.pricing;

import com.shop.model.*;

/** Totals an order, applying one discount to every line. */
public class PriceCalculator {
    private final int percent;

    public PriceCalculator(int percent) { this.percent = percent; }

    public long total(Order order) {
        long sum = 0;
        for (Item line : order.getLines()) {
            sum += Discount.apply(line, percent);
        }
        return sum;
    }
}
