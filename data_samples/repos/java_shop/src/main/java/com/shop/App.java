package com.shop;

import static com.shop.pricing.Discount.apply;

import com.shop.model.Customer;
import com.shop.model.Item;
import com.shop.model.Order;
import com.shop.pricing.PriceCalculator;

public class App {
    public static void main(String[] args) {
        Order order = new Order(new Customer("ada@example.com"));
        Item tea = new Item("tea", 450);
        order.add(tea);
        System.out.println("one tea at 10% off: " + apply(tea, 10));
        System.out.println("order total: " + new PriceCalculator(10).total(order));
    }
}
